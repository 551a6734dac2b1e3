// ResolveParams: -p k=v, then a params file, then env:, then defaults.
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "engine/parser/validator.h"

namespace runbook {
namespace {

std::vector<std::string> ParamNames(const Runbook& rb) {
  std::vector<std::string> names;
  for (const auto& p : rb.params) names.push_back(p.name);
  return names;
}

// A secret's value never appears in a message, even a wrong one.
std::string Redacted(std::string msg, const ParamSpec& spec, const std::string& value) {
  if (!spec.secret || value.empty()) return msg;
  for (size_t at = msg.find(value); at != std::string::npos; at = msg.find(value, at + 3)) {
    msg.replace(at, value.size(), "***");
  }
  return msg;
}

void FromCommandLine(const Runbook& rb, const std::map<std::string, std::string>& cli,
                     std::map<std::string, Value>* given, std::vector<Diagnostic>* diags) {
  const Pos pos{"<command line>"};
  for (const auto& [name, text] : cli) {
    const ParamSpec* spec = rb.FindParam(name);
    if (!spec) {
      diags->push_back({pos, "", "unknown param '" + name + "'", Suggest(name, ParamNames(rb))});
      continue;
    }
    Value v;
    std::string problem = ParamValueFromString(spec->type, text, &v);
    if (!problem.empty()) {
      diags->push_back({pos, "", Redacted("param '" + name + "': " + problem, *spec, text), ""});
      (*given)[name] = nullptr;  // reported once, not again as missing
      continue;
    }
    (*given)[name] = v;
  }
}

// File values fill what the command line did not give, but all are checked.
void FromFile(const Runbook& rb, const std::string& file, std::map<std::string, Value>* given,
              std::vector<Diagnostic>* diags) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    diags->push_back({Pos{file}, "", std::string("cannot read params file: ") + std::strerror(errno), ""});
    return;
  }
  std::ostringstream text;
  text << in.rdbuf();
  std::optional<Node> tree = LoadYamlTree(file, text.str(), diags);
  if (!tree || tree->IsNull()) return;
  if (!tree->IsMap()) {
    diags->push_back({tree->pos, "", "a params file must be a map of NAME: value, got " +
                                         DescribeNode(*tree), ""});
    return;
  }
  for (const auto& [k, v] : tree->entries) {
    const ParamSpec* spec = rb.FindParam(k.scalar);
    if (!spec) {
      diags->push_back({k.pos, "", "unknown param '" + k.scalar + "'",
                        Suggest(k.scalar, ParamNames(rb))});
      continue;
    }
    Value value;
    std::string problem = ParamValueFromNode(spec->type, v, &value);
    if (!problem.empty()) {
      std::string shown = v.IsScalar() ? v.scalar : "";
      diags->push_back({v.pos, "", Redacted("param '" + k.scalar + "': " + problem, *spec, shown), ""});
      given->emplace(k.scalar, nullptr);
      continue;
    }
    given->emplace(k.scalar, value);
  }
}

// The value from env:, the default, null, or a diagnostic when required.
void Fallback(const ParamSpec& spec, Value* out, std::vector<Diagnostic>* diags) {
  const char* env = spec.env.empty() ? nullptr : std::getenv(spec.env.c_str());
  if (env) {
    std::string problem = ParamValueFromString(spec.type, env, out);
    if (!problem.empty()) {
      diags->push_back({spec.pos, "", Redacted("param '" + spec.name + "' (from $" + spec.env +
                                                   "): " + problem, spec, env), ""});
    }
    return;
  }
  if (spec.default_value) {
    *out = *spec.default_value;
    return;
  }
  *out = nullptr;
  if (!spec.required) return;
  std::string how = "give -p " + spec.name + "=VALUE";
  if (!spec.env.empty()) how += " or set $" + spec.env;
  diags->push_back({spec.pos, "", "missing required param '" + spec.name + "' (" + how + ")", ""});
}

}  // namespace

Value ResolveParams(const Runbook& rb, const std::map<std::string, std::string>& cli,
                    const std::string& params_file, std::vector<Diagnostic>* diags) {
  std::map<std::string, Value> given;
  FromCommandLine(rb, cli, &given, diags);
  if (!params_file.empty()) FromFile(rb, params_file, &given, diags);
  Value out = Value::object();
  for (const ParamSpec& spec : rb.params) {
    auto it = given.find(spec.name);
    if (it != given.end()) {
      out[spec.name] = it->second;
    } else {
      Fallback(spec, &out[spec.name], diags);
    }
  }
  return out;
}

}  // namespace runbook
