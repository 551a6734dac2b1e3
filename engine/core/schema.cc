#include "engine/core/schema.h"

#include <algorithm>

#include "engine/core/byte_size.h"
#include "engine/core/duration.h"

namespace runbook {

const char* ArgTypeName(ArgType t) {
  switch (t) {
    case ArgType::kAny:
      return "any";
    case ArgType::kString:
      return "string";
    case ArgType::kInt:
      return "int";
    case ArgType::kNumber:
      return "number";
    case ArgType::kBool:
      return "bool";
    case ArgType::kList:
      return "list";
    case ArgType::kMap:
      return "map";
    case ArgType::kDuration:
      return "duration";
    case ArgType::kSize:
      return "size";
    case ArgType::kConnection:
      return "connection";
  }
  return "?";
}

const ArgSpec* Schema::Find(const std::string& name) const {
  for (const auto& a : args) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

bool HasTemplate(const std::string& s) { return s.find("${{") != std::string::npos; }

static size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string Suggest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = std::max<size_t>(2, word.size() / 3) + 1;
  for (const auto& c : candidates) {
    size_t d = EditDistance(word, c);
    // A prefix match ("replica" for "replicas") is a strong hint too.
    if (c.rfind(word, 0) == 0 || word.rfind(c, 0) == 0) d = std::min<size_t>(d, 1);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

static const char* JsonTypeName(const Value& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "bool";
  if (v.is_number_integer()) return "int";
  if (v.is_number()) return "number";
  if (v.is_string()) return "string";
  if (v.is_array()) return "list";
  return "map";
}

static bool TypeMatches(ArgType t, const Value& v) {
  if (v.is_string() && HasTemplate(v.get<std::string>())) return true;
  switch (t) {
    case ArgType::kAny:
      return true;
    case ArgType::kString:
      return v.is_string() || v.is_number();
    case ArgType::kInt:
      return v.is_number_integer();
    case ArgType::kNumber:
      return v.is_number();
    case ArgType::kBool:
      return v.is_boolean();
    case ArgType::kList:
      return v.is_array();
    case ArgType::kMap:
      return v.is_object();
    case ArgType::kDuration:
      return v.is_string() && ParseDuration(v.get<std::string>()).has_value();
    case ArgType::kSize:
      return (v.is_number_integer() && v.get<int64_t>() >= 0) ||
             (v.is_string() && ParseByteSize(v.get<std::string>()).has_value());
    case ArgType::kConnection:
      return v.is_string();
  }
  return false;
}

namespace {

bool KubeNameOk(const std::string& v) {
  if (v.empty() || v.size() > 253) return false;
  for (size_t i = 0; i < v.size(); ++i) {
    const char c = v[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && c != '-' && c != '.') return false;
    if ((i == 0 || i + 1 == v.size()) && !alnum) return false;
  }
  return true;
}

bool KubeKindOk(const std::string& v) {
  if (v.empty() || v.size() > 253) return false;
  if (!((v[0] >= 'a' && v[0] <= 'z') || (v[0] >= 'A' && v[0] <= 'Z'))) return false;
  for (char c : v) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == '/';
    if (!ok) return false;
  }
  return v.back() != '-' && v.back() != '.' && v.back() != '/';
}

}  // namespace

std::string ArgFormError(ArgForm form, const std::string& v) {
  switch (form) {
    case ArgForm::kAny:
      return "";
    case ArgForm::kKubeName:
      return KubeNameOk(v) ? ""
                           : "a Kubernetes object name (lower-case letters, digits, '-' and '.', "
                             "starting and ending with a letter or digit)";
    case ArgForm::kKubeKind:
      return KubeKindOk(v) ? "" : "a Kubernetes resource type (deployment, deployments.apps, ...)";
    case ArgForm::kKubeObject: {
      size_t slash = v.find('/');
      bool ok = slash == std::string::npos
                    ? KubeNameOk(v)
                    : KubeKindOk(v.substr(0, slash)) && KubeNameOk(v.substr(slash + 1));
      return ok ? ""
                : "a Kubernetes object: NAME or TYPE/NAME (names: lower-case letters, digits, "
                  "'-' and '.')";
    }
    case ArgForm::kNotOption:
      return !v.empty() && v[0] == '-' ? "a value that does not start with '-'" : "";
  }
  return "";
}

std::vector<ArgError> CheckArgs(const Schema& schema, const Value& args) {
  std::vector<ArgError> errors;
  if (!args.is_object()) {
    errors.push_back(
        {"", std::string("expected a map of arguments, got ") + JsonTypeName(args), ""});
    return errors;
  }
  std::vector<std::string> names;
  for (const auto& a : schema.args) names.push_back(a.name);
  for (auto it = args.begin(); it != args.end(); ++it) {
    const ArgSpec* spec = schema.Find(it.key());
    if (!spec) {
      errors.push_back({it.key(), "unknown argument '" + it.key() + "'", Suggest(it.key(), names)});
      continue;
    }
    if (!TypeMatches(spec->type, it.value())) {
      std::string msg = "argument '" + it.key() + "': expected " + ArgTypeName(spec->type);
      if (spec->type == ArgType::kDuration && it.value().is_string()) {
        msg += " such as 500ms, 30s, 10m or 2h, got '" + it.value().get<std::string>() + "'";
      } else if (spec->type == ArgType::kSize && it.value().is_string()) {
        msg += " such as 0, 64MB or 1GiB, got '" + it.value().get<std::string>() + "'";
      } else {
        msg += std::string(", got ") + JsonTypeName(it.value());
      }
      errors.push_back({it.key(), msg, ""});
      continue;
    }
    if (spec->form != ArgForm::kAny) {
      std::vector<std::string> values;
      if (it.value().is_string()) values.push_back(it.value().get<std::string>());
      if (it.value().is_array()) {
        for (const auto& e : it.value()) {
          if (e.is_string()) values.push_back(e.get<std::string>());
        }
      }
      for (const auto& v : values) {
        if (HasTemplate(v)) continue;  // checked again once expanded
        std::string want = ArgFormError(spec->form, v);
        if (!want.empty()) {
          errors.push_back(
              {it.key(), "argument '" + it.key() + "': '" + v + "' is not " + want, ""});
          break;
        }
      }
    }
    if (!spec->choices.empty() && it.value().is_string() &&
        !HasTemplate(it.value().get<std::string>())) {
      std::string v = it.value().get<std::string>();
      if (std::find(spec->choices.begin(), spec->choices.end(), v) == spec->choices.end()) {
        std::string all;
        for (const auto& c : spec->choices) all += (all.empty() ? "" : " | ") + c;
        errors.push_back({it.key(), "argument '" + it.key() + "': '" + v + "' is not one of " + all,
                          Suggest(v, spec->choices)});
      }
    }
  }
  for (const auto& a : schema.args) {
    if (a.required && !args.contains(a.name)) {
      errors.push_back({"", "missing required argument '" + a.name + "'", ""});
    }
  }
  for (const auto& group : schema.one_of) {
    int given = 0;
    std::string all;
    for (const auto& n : group) {
      if (args.contains(n)) ++given;
      all += (all.empty() ? "'" : ", '") + n + "'";
    }
    if (given != 1) {
      errors.push_back(
          {"", std::string(given == 0 ? "needs" : "takes only") + " one of " + all, ""});
    }
  }
  return errors;
}

}  // namespace runbook
