// The toolkit every binding builds its primitives with: argument specs,
// argument access with one failure behaviour, and the named-primitive base.
//
//   class Scale : public NamedPrimitive {
//    public:
//     Scale() : NamedPrimitive("kube.scale", Schema{"...", {ConnArg("conn", "kube", "..."),
//                                                          Arg("replicas", ArgType::kInt, true,
//                                                          "...")}}) {}
//     ...
//   };
//
// Arguments reach Apply already checked against the schema, but a primitive
// may also be called from Lua with anything: the accessors never throw.
// Absent (or null) means the fallback; a value of the wrong shape means the
// fallback for the plain accessors, and a kInvalid status naming the
// argument for the ones that return a Result.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/primitive.h"

namespace runbook {

ArgSpec Arg(std::string name, ArgType type, bool required, std::string help,
            std::vector<std::string> choices = {});
// A required connection argument of kind `conn_type` ("postgres", "kube", "ssh").
ArgSpec ConnArg(std::string name, std::string conn_type, std::string help);

// A string (a non-string value as its JSON text).
std::string StrArg(const Value& args, const char* key, const std::string& fallback = "");
bool BoolArg(const Value& args, const char* key, bool fallback);
// An integer, or a string of digits; nullopt if absent or not one.
std::optional<int64_t> IntArg(const Value& args, const char* key);
// A list of strings; a single string counts as a one-item list.
std::vector<std::string> StrListArg(const Value& args, const char* key);
// A duration: "30s", "500ms", or a number of seconds. Absent: `fallback`;
// not a duration: kInvalid ("timeout must be a duration such as 30s, got ...").
Result<std::chrono::milliseconds> DurationArg(const Value& args, const char* key,
                                              std::chrono::milliseconds fallback);
// The same, nullopt when absent.
Result<std::optional<std::chrono::milliseconds>> OptionalDurationArg(const Value& args,
                                                                     const char* key);
// For Plan, which cannot fail: the duration, or `fallback` when absent or bad.
std::chrono::milliseconds DurationArgOr(const Value& args, const char* key,
                                        std::chrono::milliseconds fallback);
// A size in bytes (ArgType::kSize: 1048576, "64MB", "1GiB"). Absent:
// `fallback`; not a size: kInvalid ("... must be a size such as 64MB, got ...").
Result<int64_t> SizeArg(const Value& args, const char* key, int64_t fallback);

// A primitive with a fixed name and schema: most primitives derive from it.
class NamedPrimitive : public Primitive {
 public:
  NamedPrimitive(std::string name, Schema schema)
      : name_(std::move(name)), schema_(std::move(schema)) {}
  NamedPrimitive(std::string name, Schema schema, FieldSpec result)
      : name_(std::move(name)), schema_(std::move(schema)) {
    schema_.result = std::move(result);
  }
  std::string name() const override { return name_; }
  const Schema& schema() const override { return schema_; }

 private:
  std::string name_;
  Schema schema_;
};

// What an Undo returns when it finds nothing of its step's to revert (the
// step never acted, or what it made is already gone): the rollback reports
// "nothing to undo" for the step instead of "undone".
inline Status NothingToUndo(StepContext& ctx) {
  ctx.SetChanged(false);
  return Status::Ok();
}

}  // namespace runbook
