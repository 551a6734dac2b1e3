// log, fail, sleep, approve, lua, include: the built-ins with no outside
// effect of their own.
#include <thread>

#include "engine/builtins/builtins.h"
#include "engine/core/duration.h"

namespace runbook {
namespace {

class LogAction : public Primitive {
 public:
  std::string name() const override { return "log"; }
  const Schema& schema() const override {
    static const Schema s{"Write a line to the run's log.",
                          {{"message", ArgType::kString, true, "the text"},
                           {"level",
                            ArgType::kString,
                            false,
                            "debug | info | warn | error",
                            {"debug", "info", "warn", "error"}}},
                          {},
                          "message",
                          MapResult({Field("message", FieldType::kString, "the line logged")})};
    return s;
  }
  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kProbe; }
  bool idempotent(const Value&) const override { return true; }
  PlanEffect Plan(const Value& args) const override {
    return ChangesNothing("log: " + args.value("message", ""));
  }
  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    std::string level = args.value("level", "info");
    LogLevel l = level == "debug"  ? LogLevel::kDebug
                 : level == "warn" ? LogLevel::kWarn
                 : level == "error" ? LogLevel::kError
                                    : LogLevel::kInfo;
    std::string msg = args["message"].is_string() ? args["message"].get<std::string>()
                                                  : args["message"].dump();
    ctx.Log(l, msg);
    return Value{{"message", msg}};
  }
  Status Undo(StepContext&, const Value&, const Value&) override { return Status::Ok(); }
};

class FailAction : public Primitive {
 public:
  std::string name() const override { return "fail"; }
  const Schema& schema() const override {
    static const Schema s{"Fail the step with a message (rehearsals fail too).",
                          {{"message", ArgType::kString, true, "why"}},
                          {},
                          "message",
                          AnyResult("nothing (the step always fails)")};
    return s;
  }
  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kProbe; }
  bool idempotent(const Value&) const override { return true; }
  PlanEffect Plan(const Value& args) const override {
    return ChangesNothing("fail: " + args.value("message", ""));
  }
  Result<Value> Apply(StepContext&, const Value& args) override {
    return Status::Failed(args.value("message", "failed"));
  }
};

class SleepAction : public Primitive {
 public:
  std::string name() const override { return "sleep"; }
  const Schema& schema() const override {
    static const Schema s{"Wait. A rehearsal does not wait.",
                          {{"duration", ArgType::kDuration, true, "how long: 500ms, 30s, 10m"}},
                          {},
                          "duration",
                          MapResult({Field("slept", FieldType::kString,
                                           "the duration waited, such as 30s (in a rehearsal: "
                                           "the duration a real run would wait)"),
                                     Optional(Field("rehearsal", FieldType::kBool,
                                                    "true in a rehearsal, which does not wait "
                                                    "(absent in a real run)"))})};
    return s;
  }
  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kSimulate; }
  bool idempotent(const Value&) const override { return true; }
  PlanEffect Plan(const Value& args) const override {
    return ChangesNothing("wait " + args.value("duration", "?"));
  }
  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    auto d = ParseDuration(args.value("duration", ""));
    if (!d) return Status::Invalid("bad duration");
    if (ctx.dry_run()) return Value{{"slept", FormatDuration(*d)}, {"rehearsal", true}};
    SteadyTime end = ctx.clock().Steady() + *d;
    while (ctx.clock().Steady() < end) {
      if (ctx.clock().Steady() >= ctx.deadline()) return Status::Timeout("step timed out while waiting");
      auto left = std::chrono::duration_cast<Millis>(end - ctx.clock().Steady());
      ctx.clock().Sleep(std::min(left, Millis(100)));
    }
    return Value{{"slept", FormatDuration(*d)}};
  }
  Status Undo(StepContext&, const Value&, const Value&) override { return Status::Ok(); }
};

class ApproveAction : public Primitive {
 public:
  std::string name() const override { return "approve"; }
  const Schema& schema() const override {
    static const Schema s{"A gate: wait for a human's approval (runbook approve RUN STEP).",
                          {{"message", ArgType::kString, true, "what the approver confirms"}},
                          {},
                          "message",
                          MapResult({Field("approved", FieldType::kBool,
                                           "true once approved (a rehearsal does not wait: "
                                           "true as well)")})};
    return s;
  }
  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kSimulate; }
  bool idempotent(const Value&) const override { return true; }
  PlanEffect Plan(const Value& args) const override {
    return ChangesNothing("wait for approval: " + args.value("message", ""));
  }
  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    Status s = ctx.Approve(args.value("message", ""));
    if (!s.ok()) return s;
    return Value{{"approved", true}};
  }
  Status Undo(StepContext&, const Value&, const Value&) override { return Status::Ok(); }
};

class LuaAction : public Primitive {
 public:
  std::string name() const override { return "lua"; }
  const Schema& schema() const override {
    static const Schema s{
        "Run Lua code; its return value is the step's result. Primitives it "
        "calls (pg.query{...}) join the step, their undo included.",
        {{"code", ArgType::kString, true, "Lua 5.4 code"}},
        {},
        "code",
        AnyResult("whatever the Lua code returns (null when it returns "
                  "nothing)")};
    return s;
  }
  // The sandbox has no outside effect of its own; primitives it calls follow
  // their own rehearsal modes.
  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kProbe; }
  PlanEffect Plan(const Value& args) const override {
    std::string code = args.value("code", "");
    return {"run Lua code (" + std::to_string(std::count(code.begin(), code.end(), '\n') + 1) +
                " lines); the primitives it calls are undone newest first",
            UndoKind::kUndoes, "undo the primitives it called"};
  }
  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    return ctx.RunLua(args.value("code", ""));
  }
  // Undo of the primitives it called is done entry by entry by the executor.
  Status Undo(StepContext&, const Value&, const Value&) override { return Status::Ok(); }
};

class IncludeAction : public Primitive {
 public:
  std::string name() const override { return "include"; }
  const Schema& schema() const override {
    static const Schema s{"Run another runbook's steps as ID.sub-id.",
                          {{"runbook", ArgType::kString, true, "path, relative to this file"},
                           {"params", ArgType::kMap, false, "its params"}},
                          {},
                          "",
                          MapResult({MapField("steps",
                                              "the included runbook's steps by their own ids, "
                                              "each {status, result}",
                                              {}, /*open=*/true)})};
    return s;
  }
  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kProbe; }
  // Re-entering an include resumes it: finished children are skipped.
  bool idempotent(const Value&) const override { return true; }
  PlanEffect Plan(const Value& args) const override {
    return ChangesNothing("run the steps of " + args.value("runbook", "?"));
  }
  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    return ctx.RunChild(args.value("runbook", ""), args.value("params", Value::object()));
  }
  Status Undo(StepContext&, const Value&, const Value&) override { return Status::Ok(); }
};

}  // namespace

void RegisterExec(Registry* registry);

void RegisterBuiltins(Registry* registry) {
  registry->Add(std::make_unique<LogAction>());
  registry->Add(std::make_unique<FailAction>());
  registry->Add(std::make_unique<SleepAction>());
  registry->Add(std::make_unique<ApproveAction>());
  registry->Add(std::make_unique<LuaAction>());
  registry->Add(std::make_unique<IncludeAction>());
  RegisterExec(registry);
}

}  // namespace runbook
