#include "bindings/postgres/pg_primitive.h"

#include <cctype>

#include "bindings/postgres/pg_sql.h"
#include "bindings/postgres/pg_value.h"

namespace runbook {

ArgSpec PgConnArg(std::string name, std::string help) {
  return ConnArg(std::move(name), "postgres", std::move(help));
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
