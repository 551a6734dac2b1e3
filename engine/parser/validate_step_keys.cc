// Typed keys (strings, bools, ints, durations) and the step keys that are
// more than a type: when/assert, foreach, rollback.
#include "engine/core/duration.h"
#include "engine/lua/template.h"
#include "engine/parser/validator.h"

namespace runbook {
namespace {

std::string Got(const Node& v) { return v.IsScalar() ? "'" + v.scalar + "'" : DescribeNode(v); }

}  // namespace

bool Validator::StringKey(const Node& v, const std::string& what, std::string* out) {
  if (!v.IsScalar()) {
    Error(v.pos, what + " must be a string, got " + DescribeNode(v));
    return false;
  }
  *out = v.scalar;
  return true;
}

bool Validator::BoolKey(const Node& v, const std::string& what, bool* out) {
  Value b = ToValue(v);
  if (!v.IsScalar() || v.quoted || !b.is_boolean()) {
    Error(v.pos, what + " must be true or false, got " + Got(v));
    return false;
  }
  *out = b.get<bool>();
  return true;
}

bool Validator::IntKey(const Node& v, const std::string& key, int min, int* out) {
  Value i = ToValue(v);
  if (!v.IsScalar() || v.quoted || !i.is_number_integer() || i.get<int64_t>() < min ||
      i.get<int64_t>() > 1000000) {
    Error(v.pos, "'" + key + "' must be an int >= " + std::to_string(min) + ", got " + Got(v));
    return false;
  }
  *out = static_cast<int>(i.get<int64_t>());
  return true;
}

bool Validator::DurationKey(const Node& v, const std::string& key,
                            std::chrono::milliseconds* out) {
  std::optional<std::chrono::milliseconds> d;
  if (v.IsScalar()) d = ParseDuration(v.scalar);
  if (!d) {
    Error(v.pos, "'" + key + "': bad duration " + Got(v) + " (use 500ms, 30s, 10m, 2h)");
    return false;
  }
  if (key == "timeout" && d->count() == 0) {
    Error(v.pos, "'timeout' must be more than 0");
    return false;
  }
  *out = *d;
  return true;
}

// `when` and `assert` are bare Lua expressions. `true`/`false` are fine, and
// so is one whole `${{ expr }}` (people write it out of habit): it is
// unwrapped.
void Validator::Expression(const Node& v, const std::string& key, const RefScope& scope,
                           std::optional<std::string>* out, Pos* pos) {
  std::string expr;
  if (!StringKey(v, "'" + key + "'", &expr)) return;
  *pos = ContentPos(v);
  if (HasTemplate(expr)) {
    Result<std::vector<TemplatePart>> parts = SplitTemplate(expr);
    if (!parts.ok()) {
      Error(*pos, "'" + key + "': " + parts.status().message());
      return;
    }
    if (parts->size() != 1 || !(*parts)[0].is_expr) {
      Error(*pos, "'" + key + "' is a bare Lua expression: write it without '${{ }}'");
      return;
    }
    expr = (*parts)[0].text;
  }
  if (expr.find_first_not_of(" \t\n") == std::string::npos) {
    Error(v.pos, "'" + key + "' is empty");
    return;
  }
  CheckExpr(expr, *pos, "'" + key + "'", scope);
  *out = RewriteDashedIds(expr, all_ids_);
}

void Validator::Foreach(const Node& v, StepSpec* s) {
  RefScope scope{&earlier_, ""};
  item_ = false;  // the list is made before any item exists
  struct Restore {
    bool* flag;
    ~Restore() { *flag = true; }
  } restore{&item_};
  s->foreach_pos = v.pos;
  if (v.IsSeq()) {
    s->foreach = RewriteTemplateIds(ToValue(v), all_ids_);
    CheckTemplates(v, scope);
    return;
  }
  if (v.IsScalar() && HasTemplate(v.scalar)) {
    size_t before = diags_->size();
    CheckTemplates(v, scope);
    if (diags_->size() != before) return;
    if (IsSingleExpression(v.scalar)) {
      s->foreach = RewriteTemplateIds(v.scalar, all_ids_);
      return;
    }
  }
  Error(v.pos, "'foreach' must be a list or one '${{ expression }}' that yields a list, got " +
                   Got(v));
}

void Validator::Rollback(const Node& v, StepSpec* s) {
  if (v.IsScalar()) {
    if (v.scalar == "auto") {
      s->rollback = RollbackMode::kAuto;
    } else if (v.scalar == "none") {
      s->rollback = RollbackMode::kNone;
    } else {
      Error(v.pos, "'rollback' must be auto, none or an action, got " + Got(v),
            Suggest(v.scalar, {"auto", "none"}));
    }
    return;
  }
  if (!v.IsMap()) {
    Error(v.pos, "'rollback' must be auto, none or an action, got " + DescribeNode(v));
    return;
  }
  const std::pair<Node, Node>* action = nullptr;
  for (const auto& entry : v.entries) {
    const std::string& key = entry.first.scalar;
    if (!registry_.Find(key)) {
      Error(entry.first.pos, "rollback: unknown action '" + key + "'",
            Suggest(key, registry_.Names()));
    } else if (action) {
      Error(entry.first.pos, "rollback: two actions, '" + action->first.scalar + "' and '" + key +
                                 "' (a rollback takes exactly one)");
    } else {
      action = &entry;
    }
  }
  if (!action) {
    if (v.entries.empty()) Error(v.pos, "'rollback' needs an action");
    return;
  }
  // A rollback runs after its step, so it may read the step's own result.
  RefScope scope{&with_self_, ""};
  ActionSpec a;
  Action(action->first, action->second, scope, &a);
  s->rollback = RollbackMode::kAction;
  s->rollback_action = std::move(a);
}

}  // namespace runbook
