#include "bindings/postgres/pg_primitive.h"

namespace runbook {

ArgSpec PgArg(std::string name, ArgType type, bool required, std::string help,
              std::vector<std::string> choices) {
  ArgSpec a;
  a.name = std::move(name);
  a.type = type;
  a.required = required;
  a.help = std::move(help);
  a.choices = std::move(choices);
  return a;
}

ArgSpec PgConnArg(std::string name, std::string help) {
  ArgSpec a = PgArg(std::move(name), ArgType::kConnection, true, std::move(help));
  a.conn_type = "postgres";
  return a;
}

std::string StrArg(const Value& args, const char* key, const std::string& fallback) {
  if (!args.is_object() || !args.contains(key) || args[key].is_null()) return fallback;
  const Value& v = args[key];
  return v.is_string() ? v.get<std::string>() : v.dump();
}

bool BoolArg(const Value& args, const char* key, bool fallback) {
  if (!args.is_object() || !args.contains(key) || !args[key].is_boolean()) return fallback;
  return args[key].get<bool>();
}

std::vector<std::string> StrListArg(const Value& args, const char* key) {
  std::vector<std::string> out;
  if (!args.is_object() || !args.contains(key)) return out;
  const Value& v = args[key];
  if (v.is_string()) return {v.get<std::string>()};
  if (!v.is_array()) return out;
  for (const auto& item : v) out.push_back(item.is_string() ? item.get<std::string>() : item.dump());
  return out;
}

}  // namespace runbook
