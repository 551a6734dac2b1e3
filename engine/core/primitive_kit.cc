#include "engine/core/primitive_kit.h"

#include "engine/core/byte_size.h"
#include "engine/core/duration.h"

namespace runbook {

ArgSpec Arg(std::string name, ArgType type, bool required, std::string help,
            std::vector<std::string> choices) {
  ArgSpec a;
  a.name = std::move(name);
  a.type = type;
  a.required = required;
  a.help = std::move(help);
  a.choices = std::move(choices);
  return a;
}

ArgSpec ConnArg(std::string name, std::string conn_type, std::string help) {
  ArgSpec a = Arg(std::move(name), ArgType::kConnection, true, std::move(help));
  a.conn_type = std::move(conn_type);
  return a;
}

static const Value* Present(const Value& args, const char* key) {
  if (!args.is_object()) return nullptr;
  auto it = args.find(key);
  if (it == args.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string StrArg(const Value& args, const char* key, const std::string& fallback) {
  const Value* v = Present(args, key);
  if (!v) return fallback;
  return v->is_string() ? v->get<std::string>() : v->dump();
}

bool BoolArg(const Value& args, const char* key, bool fallback) {
  const Value* v = Present(args, key);
  return v && v->is_boolean() ? v->get<bool>() : fallback;
}

std::optional<int64_t> IntArg(const Value& args, const char* key) {
  const Value* v = Present(args, key);
  if (!v) return std::nullopt;
  if (v->is_number_integer()) return v->get<int64_t>();
  if (v->is_string()) {
    const std::string& s = v->get<std::string>();
    if (!s.empty() && s.size() < 10 && s.find_first_not_of("0123456789") == std::string::npos) {
      return std::stoll(s);
    }
  }
  return std::nullopt;
}

std::vector<std::string> StrListArg(const Value& args, const char* key) {
  const Value* v = Present(args, key);
  if (!v) return {};
  if (v->is_string()) return {v->get<std::string>()};
  std::vector<std::string> out;
  if (!v->is_array()) return out;
  for (const auto& item : *v)
    out.push_back(item.is_string() ? item.get<std::string>() : item.dump());
  return out;
}

Result<std::optional<std::chrono::milliseconds>> OptionalDurationArg(const Value& args,
                                                                     const char* key) {
  using Out = std::optional<std::chrono::milliseconds>;
  const Value* v = Present(args, key);
  if (!v) return Out();
  if (v->is_number() && v->get<double>() >= 0) {
    return Out(std::chrono::milliseconds(static_cast<int64_t>(v->get<double>() * 1000)));
  }
  if (v->is_string()) {
    if (auto d = ParseDuration(v->get<std::string>())) return Out(*d);
  }
  return Status::Invalid(std::string(key) + " must be a duration such as 30s, got " + v->dump());
}

Result<std::chrono::milliseconds> DurationArg(const Value& args, const char* key,
                                              std::chrono::milliseconds fallback) {
  auto d = OptionalDurationArg(args, key);
  if (!d.ok()) return d.status();
  return d->value_or(fallback);
}

std::chrono::milliseconds DurationArgOr(const Value& args, const char* key,
                                        std::chrono::milliseconds fallback) {
  auto d = OptionalDurationArg(args, key);
  return d.ok() && d->has_value() ? **d : fallback;
}

Result<int64_t> SizeArg(const Value& args, const char* key, int64_t fallback) {
  const Value* v = Present(args, key);
  if (!v) return fallback;
  if (v->is_number_integer() && v->get<int64_t>() >= 0) return v->get<int64_t>();
  if (v->is_string()) {
    if (auto n = ParseByteSize(v->get<std::string>())) return *n;
  }
  return Status::Invalid(std::string(key) + " must be a size such as 0, 64MB or 1GiB, got " +
                         v->dump());
}

}  // namespace runbook
