#include <cctype>
#include "bindings/postgres/pg_primitive.h"

#include "bindings/postgres/pg_sql.h"
#include "bindings/postgres/pg_value.h"
#include "engine/core/duration.h"

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

std::optional<std::chrono::milliseconds> DurationArg(const Value& args, const char* key,
                                                     const std::string& fallback) {
  if (args.is_object() && args.contains(key) && args[key].is_number()) {
    return std::chrono::milliseconds(static_cast<int64_t>(args[key].get<double>() * 1000));
  }
  return ParseDuration(StrArg(args, key, fallback));
}

PgParams ParamsArg(const Value& args) {
  PgParams out;
  if (!args.is_object() || !args.contains("params") || !args["params"].is_array()) return out;
  for (const auto& v : args["params"]) out.push_back(ValueToPgParam(v));
  return out;
}

std::string PlanSql(const std::string& sql, const PgParams& params) {
  std::string out = sql;
  for (size_t i = 0; i < params.size(); ++i) {
    out += i == 0 ? "\n-- " : ", ";
    out += "$" + std::to_string(i + 1) + " = " +
           (params[i] ? QuoteLiteralPlain(*params[i]) : std::string("NULL"));
  }
  return out;
}

std::string ReplicationObjectName(StepContext& ctx) {
  std::string n = "runbook_" + ctx.run_id() + "_" + ctx.step_id();
  for (char& c : n) {
    c = std::isalnum(static_cast<unsigned char>(c)) ? std::tolower(static_cast<unsigned char>(c))
                                                    : '_';
  }
  return n.substr(0, 63);
}

}  // namespace runbook
