// steps: a list of {id, <step keys>, <exactly one action>}
#include <algorithm>

#include "engine/parser/validator.h"
#include "engine/core/text.h"

namespace runbook {
namespace {

const std::vector<std::string>& StepKeys() {
  static const std::vector<std::string> kKeys = {
      "id",      "description", "when",     "foreach",    "concurrency",
      "retries", "retry_delay", "timeout",  "assert",     "rollback",
      "idempotent", "approve",  "continue_on_error", "rollback_boundary"};
  return kKeys;
}

bool IsStepKey(const std::string& key) {
  const auto& keys = StepKeys();
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

std::string Join(const std::vector<std::string>& names) {
  std::string all;
  for (const auto& n : names) all += (all.empty() ? "" : ", ") + n;
  return all;
}

}  // namespace

// Every id, before any step is validated: an expression that names a later
// step is then reported as such, and dashed ids are understood everywhere.
void Validator::CollectIds(const Node& n) {
  if (!n.IsSeq()) return;
  for (const Node& item : n.items) {
    const Node* id = item.IsMap() ? item.Find("id") : nullptr;
    if (id && id->IsScalar()) all_ids_.insert(id->scalar);
  }
}

void Validator::Steps(const Node& n) {
  if (!n.IsSeq()) {
    Error(n.pos, "steps must be a list, got " + DescribeNode(n));
    return;
  }
  if (n.items.empty()) {
    Error(n.pos, "steps is empty: a runbook needs at least one step");
    return;
  }
  for (size_t i = 0; i < n.items.size(); ++i) Step(n.items[i], i);
  step_.clear();
  step_id_.clear();
}

void Validator::Step(const Node& n, size_t index) {
  step_ = "#" + std::to_string(index + 1);
  step_id_.clear();
  if (!n.IsMap()) {
    Error(n.pos, "a step must be a map with an id and an action, got " + DescribeNode(n));
    return;
  }
  StepSpec s;
  s.pos = n.pos;
  StepId(n, &s);
  // Everything of a foreach step but the foreach itself runs per item.
  item_ = n.Find("foreach") != nullptr;
  with_self_ = earlier_;
  if (!s.id.empty()) with_self_.insert(s.id);
  std::vector<const std::pair<Node, Node>*> actions;
  for (const auto& entry : n.entries) {
    if (!IsStepKey(entry.first.scalar) && registry_.Find(entry.first.scalar)) {
      actions.push_back(&entry);
    }
  }
  // `approve` is a step key (a gate before the action) and, in a step with
  // no other action, the action `approve` (a gate on its own).
  const auto* approve = n.FindEntry("approve");
  bool approve_is_action = actions.empty() && approve && registry_.Find("approve");
  if (approve_is_action) actions.push_back(approve);
  bool misspelt_action = false;
  for (const auto& entry : n.entries) {
    const std::string& key = entry.first.scalar;
    if (IsStepKey(key)) {
      if (key != "id" && !(approve_is_action && key == "approve")) StepKey(key, entry.second, &s);
    } else if (!registry_.Find(key)) {
      if (UnknownStepKey(entry.first, actions)) misspelt_action = true;
    }
  }
  // A misspelt action is the one error to report, not also a missing one.
  if (!actions.empty() || !misspelt_action) StepActions(n, actions, &s);
  if (!s.id.empty()) earlier_.insert(s.id);
  item_ = false;
  rb_->steps.push_back(std::move(s));
}

void Validator::StepId(const Node& n, StepSpec* s) {
  const Node* id = n.Find("id");
  if (!id) {
    Error(n.pos, "missing required key 'id'");
    return;
  }
  std::string text;
  if (!StringKey(*id, "'id'", &text)) return;
  s->id = text;
  step_ = text;
  step_id_ = text;
  if (!MatchesName(text, IsAsciiAlnum, [](char c) { return IsIdentChar(c) || c == '-'; })) {
    Error(id->pos, "bad id '" + text +
                       "': use letters, digits, '-' and '_', starting with a letter or digit");
  }
  auto [it, fresh] = seen_ids_.emplace(text, id->pos);
  if (!fresh) {
    Error(id->pos, "duplicate step id '" + text + "' (first at line " +
                       std::to_string(it->second.line) + ")");
  }
}

// Suggestions come from step keys, action names and, since an argument put
// beside its action instead of under it is a common slip, the arguments of
// the step's action. Returns true when the key looks like a misspelt action.
bool Validator::UnknownStepKey(const Node& k,
                               const std::vector<const std::pair<Node, Node>*>& actions) {
  std::vector<std::string> candidates = StepKeys();
  for (const auto& name : registry_.Names()) candidates.push_back(name);
  for (const auto* action : actions) {
    const std::string& name = action->first.scalar;
    if (registry_.Find(name)->schema().Find(k.scalar)) {
      Error(k.pos, "unknown key '" + k.scalar + "' (an argument of " + name + ": put it under '" +
                       name + ":')");
      return false;
    }
    for (const auto& arg : registry_.Find(name)->schema().args) candidates.push_back(arg.name);
  }
  std::string suggestion = Suggest(k.scalar, candidates);
  bool action_like = k.scalar.find('.') != std::string::npos ||
                     (!suggestion.empty() && !IsStepKey(suggestion) && registry_.Find(suggestion));
  Error(k.pos, std::string(action_like ? "unknown action '" : "unknown key '") + k.scalar + "'",
        suggestion);
  return action_like;
}

void Validator::StepActions(const Node& n,
                            const std::vector<const std::pair<Node, Node>*>& actions,
                            StepSpec* s) {
  if (actions.empty()) {
    Error(n.pos, "no action (one of: " + Join(registry_.Names()) + ")");
    return;
  }
  for (size_t i = 1; i < actions.size(); ++i) {
    Error(actions[i]->first.pos, "two actions, '" + actions[0]->first.scalar + "' and '" +
                                     actions[i]->first.scalar + "' (a step takes exactly one)");
  }
  RefScope scope{&earlier_, ""};
  Action(actions[0]->first, actions[0]->second, scope, &s->action);
  if (s->action.kind == ActionKind::kInclude && !s->id.empty()) include_steps_.insert(s->id);
}

void Validator::StepKey(const std::string& key, const Node& v, StepSpec* s) {
  RefScope before{&earlier_, ""};
  RefScope after{&with_self_, ""};
  bool b = false;
  std::chrono::milliseconds ms{0};
  if (key == "description") {
    StringKey(v, "'description'", &s->description);
  } else if (key == "when") {
    Expression(v, key, before, &s->when, &s->when_pos);
  } else if (key == "assert") {
    Expression(v, key, after, &s->assert_expr, &s->assert_pos);
  } else if (key == "foreach") {
    Foreach(v, s);
  } else if (key == "concurrency") {
    IntKey(v, key, 1, &s->concurrency);
  } else if (key == "retries") {
    IntKey(v, key, 0, &s->retries);
  } else if (key == "retry_delay") {
    DurationKey(v, key, &s->retry_delay);
  } else if (key == "timeout") {
    if (DurationKey(v, key, &ms)) s->timeout = ms;
  } else if (key == "rollback") {
    Rollback(v, s);
  } else if (key == "idempotent") {
    if (BoolKey(v, "'idempotent'", &b)) s->idempotent = b;
  } else if (key == "continue_on_error") {
    BoolKey(v, "'continue_on_error'", &s->continue_on_error);
  } else if (key == "rollback_boundary") {
    std::string id;
    if (!StringKey(v, "'rollback_boundary'", &id)) return;
    std::vector<std::string> later;
    for (const auto& other : all_ids_) {
      if (!with_self_.count(other)) later.push_back(other);
    }
    if (!all_ids_.count(id)) {
      Error(v.pos, "rollback_boundary: no step '" + id + "'", Suggest(id, later));
    } else if (with_self_.count(id)) {
      Error(v.pos, "rollback_boundary: '" + id + "' must be a later step (once it has run, a "
                   "rollback stops before this one)");
    } else {
      s->rollback_boundary = id;
    }
  } else if (key == "approve") {
    std::string msg;
    if (StringKey(v, "'approve'", &msg)) {
      s->approve = RewriteTemplateIds(msg, all_ids_);
      const bool item = item_;
      item_ = false;  // asked once, before any item
      CheckTemplates(v, before);
      item_ = item;
    }
  }
}

}  // namespace runbook
