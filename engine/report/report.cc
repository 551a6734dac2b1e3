#include "engine/report/report.h"

#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "engine/core/clock.h"
#include "engine/core/duration.h"

namespace runbook {
namespace {

struct Data {
  RunRecord run;
  std::vector<StepRecord> steps;
  std::vector<Approval> approvals;
  // Steps a rollback found nothing of to revert (its last undo.ok said so).
  std::set<std::string> nothing_undone;
};

// A table cell of markdown: values from a runbook are text, never markup.
// HTML (<!--, <script>) becomes entities; what would end the cell, open a
// code span or make an inline link or image ("](") is escaped; control
// characters show as \xNN. Brackets alone (move[2]) stay as they are.
std::string Cell(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    switch (c) {
      case '\n': out += "<br>"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '|': case '`': case '\\':
        out += '\\';
        out += c;
        break;
      case '(':
        if (i > 0 && s[i - 1] == ']') out += '\\';
        out += c;
        break;
      default:
        if ((c >= 0 && c < 0x20) || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
}

std::string Html(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default:
        if ((c >= 0 && c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
}

// What a change record calls the status.
std::string StatusText(StepStatus s) {
  switch (s) {
    case StepStatus::kSucceeded: return "Complete";
    case StepStatus::kFailed: return "Failed";
    case StepStatus::kSkipped: return "Skipped";
    case StepStatus::kUnknown: return "Unknown (rehearsal)";
    case StepStatus::kWaiting: return "Waiting for approval";
    case StepStatus::kUndone: return "Rolled back";
    case StepStatus::kUndoFailed: return "Rollback FAILED";
    case StepStatus::kUndoing: return "Rolling back";
    case StepStatus::kRunning: return "Interrupted";
    case StepStatus::kPending: return "Pending";
  }
  return "?";
}

std::string Date(int64_t ms) { return ms ? FormatUtc(ms).substr(0, 10) : ""; }

struct Row {
  std::string date, step, change, status, duration, error;
};

std::vector<Row> Rows(const Data& d) {
  std::vector<Row> rows;
  for (const auto& s : d.steps) {
    std::string change = s.change;
    if (change.size() > 300) change = change.substr(0, 300) + "...";
    std::string err = s.error;
    if (!s.undo_error.empty()) err += (err.empty() ? "" : "; ") + std::string("undo: ") + s.undo_error;
    const bool nothing = s.status == StepStatus::kUndone && d.nothing_undone.count(s.step_id);
    rows.push_back({Date(s.started_ms ? s.started_ms : s.finished_ms), StepLabel(s), change,
                    nothing ? std::string("Rolled back: ") + kNothingToUndo : StatusText(s.status),
                    s.duration_ms ? FormatDuration(Millis(s.duration_ms)) : "", err});
  }
  return rows;
}

std::string Opt(const Value& options, const char* key) {
  if (!options.is_object() || !options.contains(key) || !options[key].is_string()) return "";
  return options[key].get<std::string>();
}

bool Ended(RunStatus s) {
  return s == RunStatus::kSucceeded || s == RunStatus::kFailed || s == RunStatus::kStopped ||
         s == RunStatus::kRolledBack || s == RunStatus::kRollbackFailed;
}

// What a change record says about the run as a whole, in this order.
using SummaryRows = std::vector<std::pair<std::string, std::string>>;

// The first rows of a run's or a fleet's summary: what ran, and who.
SummaryRows RecordSummary(const RunRecord& run) {
  SummaryRows out;
  out.emplace_back("Runbook", run.runbook_path);
  out.emplace_back("Digest", "sha256:" + run.digest);
  out.emplace_back("Status", RunStatusName(run.status));
  out.emplace_back("Rehearsal", run.dry_run ? "yes (nothing was changed)" : "no");
  const std::string by = Opt(run.options, "operator");
  if (!by.empty()) out.emplace_back("Started by", by);
  return out;
}

// The JSON fields a run's and a fleet's report share.
Value RecordJson(const RunRecord& run) {
  return {{"runbook", run.runbook_name},
          {"path", run.runbook_path},
          {"status", RunStatusName(run.status)},
          {"dry_run", run.dry_run},
          {"started", FormatUtc(run.created_ms)},
          {"updated", FormatUtc(run.updated_ms)},
          {"digest", run.digest},
          {"operator", Opt(run.options, "operator")},
          {"params", run.params},
          {"outcome", run.error}};
}

// An HTML page's start: its title, the style (`status_css` colours the
// status cells), and the summary table (params and digests as code).
std::string HtmlStart(const std::string& title, const char* status_css,
                      const SummaryRows& summary) {
  std::ostringstream o;
  o << "<!doctype html><html><head><meta charset=\"utf-8\"><title>" << Html(title)
    << "</title><style>"
    << "body{font:14px system-ui,sans-serif;margin:2em;color:#222}"
    << "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
    << "text-align:left;vertical-align:top}th{background:#f4f4f4}" << status_css
    << "code{font-size:12px}</style></head><body>";
  o << "<h1>" << Html(title) << "</h1>";
  o << "<table class=\"summary\">";
  for (const auto& [label, value] : summary) {
    const bool code = label == "Params" || label == "Common params" || label == "Digest";
    o << "<tr><th>" << Html(label) << "</th><td>"
      << (code ? "<code>" + Html(value) + "</code>" : Html(value)) << "</td></tr>";
  }
  o << "</table>";
  return o.str();
}

SummaryRows Summary(const Data& d) {
  SummaryRows out = RecordSummary(d.run);
  const std::string target = Opt(d.run.options, "fleet_target");
  if (!target.empty()) out.emplace_back("Fleet target", target);
  const std::string fleet = Opt(d.run.options, "fleet_id");
  if (!fleet.empty()) out.emplace_back("Fleet", fleet);
  out.emplace_back("Started", FormatUtc(d.run.created_ms));
  out.emplace_back(Ended(d.run.status) ? "Finished" : "Last update", FormatUtc(d.run.updated_ms));
  out.emplace_back("Params", d.run.params.dump());
  if (!d.run.error.empty()) out.emplace_back("Outcome", d.run.error);
  return out;
}

std::string Markdown(const Data& d) {
  std::ostringstream o;
  o << "# " << d.run.runbook_name << ": run " << d.run.id << "\n\n";
  o << "| | |\n|---|---|\n";
  for (const auto& [label, value] : Summary(d))
    o << "| " << label << " | " << Cell(value) << " |\n";
  o << "\n## Implementation Log\n\n";
  o << "| Date | Step | Change | Status | Duration |\n|---|---|---|---|---|\n";
  for (const auto& r : Rows(d)) {
    o << "| " << r.date << " | " << Cell(r.step) << " | " << Cell(r.change) << " | " << r.status
      << (r.error.empty() ? "" : ": " + Cell(r.error)) << " | " << r.duration << " |\n";
  }
  bool any_table = false;
  for (const auto& s : d.steps) {
    for (const auto& tv : s.tables) {
      Table t = TableFromValue(tv);
      if (!any_table) o << "\n## Verification\n";
      any_table = true;
      o << "\n### " << Cell(s.step_id) << (t.title.empty() ? "" : ": " + Cell(t.title)) << "\n\n";
      o << "|";
      for (const auto& c : t.columns) o << " " << Cell(c) << " |";
      o << "\n|";
      for (size_t i = 0; i < t.columns.size(); ++i) o << "---|";
      o << "\n";
      for (const auto& row : t.rows) {
        o << "|";
        for (const auto& c : row) o << " " << Cell(c) << " |";
        o << "\n";
      }
    }
  }
  if (!d.approvals.empty()) {
    o << "\n## Approvals\n\n| Step | Approved by | At |\n|---|---|---|\n";
    for (const auto& a : d.approvals) {
      o << "| " << Cell(a.step_id) << " | " << Cell(a.by) << " | " << FormatUtc(a.at_ms) << " |\n";
    }
  }
  return o.str();
}

std::string Json(const Data& d) {
  Value steps = Value::array();
  for (const auto& s : d.steps) {
    steps.push_back({{"step", s.step_id},
                     {"item", s.item},
                     {"action", s.action},
                     {"status", StepStatusName(s.status)},
                     {"change", s.change},
                     {"started", s.started_ms ? FormatUtc(s.started_ms) : ""},
                     {"duration_ms", s.duration_ms},
                     {"attempts", s.attempts},
                     {"result", s.result},
                     {"tables", s.tables},
                     {"error", s.error},
                     {"undo_error", s.undo_error}});
    if (s.status == StepStatus::kUndone && d.nothing_undone.count(s.step_id)) {
      steps.back()["nothing_to_undo"] = true;  // rolled back, yet its undo found nothing
    }
  }
  Value approvals = Value::array();
  for (const auto& a : d.approvals) {
    approvals.push_back({{"step", a.step_id}, {"by", a.by}, {"at", FormatUtc(a.at_ms)}});
  }
  Value out = RecordJson(d.run);
  out["run"] = d.run.id;
  out["fleet"] = Opt(d.run.options, "fleet_id");  // "" when not a fleet's target
  out["fleet_target"] = Opt(d.run.options, "fleet_target");
  out["steps"] = steps;
  out["approvals"] = approvals;
  return out.dump(2) + "\n";
}

std::string HtmlPage(const Data& d) {
  std::ostringstream o;
  o << HtmlStart(d.run.runbook_name + ": run " + d.run.id,
                 ".Complete{color:#186a1e}.Failed,.Rollback{color:#b00020}", Summary(d));
  o << "<h2>Implementation Log</h2><table><tr><th>Date</th><th>Step</th><th>Change</th>"
    << "<th>Status</th><th>Duration</th></tr>";
  for (const auto& r : Rows(d)) {
    o << "<tr><td>" << r.date << "</td><td>" << Html(r.step) << "</td><td><code>"
      << Html(r.change) << "</code></td><td class=\"" << r.status.substr(0, r.status.find(' '))
      << "\">" << Html(r.status) << (r.error.empty() ? "" : ": " + Html(r.error)) << "</td><td>"
      << r.duration << "</td></tr>";
  }
  o << "</table>";
  bool any_table = false;
  for (const auto& s : d.steps) {
    for (const auto& tv : s.tables) {
      Table t = TableFromValue(tv);
      if (!any_table) o << "<h2>Verification</h2>";
      any_table = true;
      o << "<h3>" << Html(s.step_id) << (t.title.empty() ? "" : ": " + Html(t.title))
        << "</h3><table><tr>";
      for (const auto& c : t.columns) o << "<th>" << Html(c) << "</th>";
      o << "</tr>";
      for (const auto& row : t.rows) {
        o << "<tr>";
        for (const auto& c : row) o << "<td>" << Html(c) << "</td>";
        o << "</tr>";
      }
      o << "</table>";
    }
  }
  if (!d.approvals.empty()) {
    o << "<h2>Approvals</h2><table><tr><th>Step</th><th>By</th><th>At</th></tr>";
    for (const auto& a : d.approvals) {
      o << "<tr><td>" << Html(a.step_id) << "</td><td>" << Html(a.by) << "</td><td>"
        << FormatUtc(a.at_ms) << "</td></tr>";
    }
    o << "</table>";
  }
  o << "</body></html>\n";
  return o.str();
}

// A fleet's record: its definition and what became of each target, with
// a link to each target run's own change record (the file `report -o`
// writes beside this one: RUN_ID.md, .json or .html).
struct FleetTarget {
  std::string name, outcome, run, run_status, failed_step, note, duration;
  int wave = 0;
};

struct FleetData {
  RunRecord run;
  std::vector<FleetTarget> targets;
  std::vector<Event> resumes;  // "fleet.resume": who resumed it, when
  std::vector<Approval> gates;  // approvals of its --approve-waves gates
};

SummaryRows FleetSummary(const FleetData& d) {
  const Value& def = d.run.options["fleet"];
  SummaryRows out = RecordSummary(d.run);
  out.emplace_back("Targets", std::to_string(d.targets.size()) + " from " +
                                  def.value("source", std::string("?")));
  std::string waves;
  for (const Value& w : def.value("waves", Value::array())) {
    waves += (waves.empty() ? "" : ", ") + w.dump();
  }
  out.emplace_back("Waves", waves);
  out.emplace_back("Max concurrency", def.value("max_concurrency", Value(1)).dump());
  out.emplace_back("Max failures", def.value("max_failures", Value(0)).dump());
  if (def.value("pause_between_waves", false)) out.emplace_back("Pause between waves", "yes");
  out.emplace_back("Started", FormatUtc(d.run.created_ms));
  for (const Event& e : d.resumes)
    out.emplace_back("Resumed", FormatUtc(e.at_ms) + " " + e.message);
  out.emplace_back(Ended(d.run.status) ? "Finished" : "Last update", FormatUtc(d.run.updated_ms));
  out.emplace_back("Common params", d.run.params.dump());
  std::map<std::string, int> counts;
  for (const FleetTarget& t : d.targets) ++counts[t.outcome];
  std::string tally;
  for (const auto& [outcome, n] : counts) {
    tally += (tally.empty() ? "" : ", ") + std::to_string(n) + " " + outcome;
  }
  out.emplace_back("Outcomes", tally);
  if (!d.run.error.empty()) out.emplace_back("Outcome", d.run.error);
  return out;
}

std::string FleetMarkdown(const FleetData& d) {
  std::ostringstream o;
  o << "# " << Cell(d.run.runbook_name) << ": fleet " << d.run.id << "\n\n";
  o << "| | |\n|---|---|\n";
  for (const auto& [label, value] : FleetSummary(d)) {
    o << "| " << label << " | " << Cell(value) << " |\n";
  }
  o << "\n## Targets\n\n| Target | Wave | Outcome | Run (change record) | Run status now | "
       "Duration | Failed step | Note |\n|---|---|---|---|---|---|---|---|\n";
  for (const FleetTarget& t : d.targets) {
    // A run id is [0-9a-f-] (NewRunId), safe in a link.
    o << "| " << Cell(t.name) << " | " << (t.wave ? std::to_string(t.wave) : "") << " | "
      << Cell(t.outcome) << " | " << (t.run.empty() ? "" : "[" + t.run + "](" + t.run + ".md)")
      << " | " << Cell(t.run_status) << " | " << t.duration << " | " << Cell(t.failed_step) << " | "
      << Cell(t.note) << " |\n";
  }
  if (!d.gates.empty()) {
    o << "\n## Approvals\n\n| Gate | Approved by | At |\n|---|---|---|\n";
    for (const auto& a : d.gates) {
      o << "| " << Cell(a.step_id) << " | " << Cell(a.by) << " | " << FormatUtc(a.at_ms) << " |\n";
    }
  }
  return o.str();
}

std::string FleetJson(const FleetData& d) {
  Value targets = Value::array();
  for (const FleetTarget& t : d.targets) {
    targets.push_back({{"target", t.name},
                       {"wave", t.wave},
                       {"outcome", t.outcome},
                       {"run", t.run},
                       {"run_status", t.run_status},
                       {"report", t.run.empty() ? "" : t.run + ".json"},
                       {"duration", t.duration},
                       {"failed_step", t.failed_step},
                       {"note", t.note}});
  }
  Value out = RecordJson(d.run);
  out["fleet"] = d.run.id;
  out["approvals"] = Value::array();
  for (const auto& a : d.gates) {
    out["approvals"].push_back({{"gate", a.step_id}, {"by", a.by}, {"at", FormatUtc(a.at_ms)}});
  }
  out["resumed"] = Value::array();
  for (const Event& e : d.resumes) {
    out["resumed"].push_back({{"at", FormatUtc(e.at_ms)}, {"note", e.message}});
  }
  out["definition"] = d.run.options["fleet"];
  out["targets"] = targets;
  return out.dump(2) + "\n";
}

std::string FleetHtml(const FleetData& d) {
  std::ostringstream o;
  o << HtmlStart(d.run.runbook_name + ": fleet " + d.run.id,
                 ".succeeded{color:#186a1e}.failed,.needs{color:#b00020}", FleetSummary(d));
  o << "<h2>Targets</h2><table class=\"targets\"><tr><th>Target</th><th>Wave</th>"
    << "<th>Outcome</th><th>Run (change record)</th><th>Run status now</th><th>Duration</th>"
    << "<th>Failed step</th><th>Note</th></tr>";
  for (const FleetTarget& t : d.targets) {
    o << "<tr><td>" << Html(t.name) << "</td><td>" << (t.wave ? std::to_string(t.wave) : "")
      << "</td><td class=\"" << Html(t.outcome.substr(0, t.outcome.find(' '))) << "\">"
      << Html(t.outcome) << "</td><td>"
      << (t.run.empty() ? "" : "<a href=\"" + t.run + ".html\">" + t.run + "</a>") << "</td><td>"
      << Html(t.run_status) << "</td><td>" << t.duration << "</td><td>" << Html(t.failed_step)
      << "</td><td>" << Html(t.note) << "</td></tr>";
  }
  o << "</table>";
  if (!d.gates.empty()) {
    o << "<h2>Approvals</h2><table><tr><th>Gate</th><th>By</th><th>At</th></tr>";
    for (const auto& a : d.gates) {
      o << "<tr><td>" << Html(a.step_id) << "</td><td>" << Html(a.by) << "</td><td>"
        << FormatUtc(a.at_ms) << "</td></tr>";
    }
    o << "</table>";
  }
  o << "</body></html>\n";
  return o.str();
}

Result<std::string> RenderFleet(StateStore& store, const RunRecord& run, ReportFormat format) {
  FleetData d;
  d.run = run;
  Result<std::vector<StepRecord>> steps = store.GetSteps(run.id);
  if (!steps.ok()) return steps.status();
  for (const StepRecord& s : *steps) {
    const Value& r = s.result;
    if (s.action == "fleet.wave") {  // a gate between waves
      auto a = store.GetApproval(run.id, s.step_id);
      if (!a.ok()) return a.status();
      if (a->has_value()) d.gates.push_back(**a);
      continue;
    }
    FleetTarget t;
    t.name = r.value("target", "");
    t.outcome = r.value("status", "");
    t.run = r.value("run", "");
    t.wave = r.value("wave", 0);
    t.failed_step = r.value("failed_step", "");
    t.note = r.value("note", "");
    t.duration = s.duration_ms ? FormatDuration(Millis(s.duration_ms)) : "";
    if (!t.run.empty()) {
      Result<RunRecord> tr = store.GetRun(t.run);
      const bool gone =
          tr.ok() && (tr->status == RunStatus::kRunning || tr->status == RunStatus::kRollingBack) &&
          !store.LockHeld(tr->lock_key);
      t.run_status =
          !tr.ok() ? "not in this store"
          : gone   ? (tr->status == RunStatus::kRunning ? "interrupted" : "interrupted_rollback")
                   : RunStatusName(tr->status);
    }
    d.targets.push_back(std::move(t));
  }
  Result<std::vector<Event>> events = store.GetEvents(run.id);
  if (!events.ok()) return events.status();
  for (const Event& e : *events) {
    if (e.Is(EventKind::kFleetResume)) d.resumes.push_back(e);
  }
  switch (format) {
    case ReportFormat::kMarkdown:
      return FleetMarkdown(d);
    case ReportFormat::kJson:
      return FleetJson(d);
    case ReportFormat::kHtml:
      return FleetHtml(d);
  }
  return Status::Internal("format");
}

}  // namespace

Result<std::string> RenderReport(StateStore& store, const std::string& run_id,
                                 ReportFormat format) {
  Data d;
  Result<RunRecord> run = store.GetRun(run_id);
  if (!run.ok()) return run.status();
  if (IsFleet(*run)) return RenderFleet(store, *run, format);
  d.run = *run;
  Result<std::vector<StepRecord>> steps = store.GetSteps(run_id);
  if (!steps.ok()) return steps.status();
  d.steps = *steps;
  for (const auto& s : d.steps) {
    auto a = store.GetApproval(run_id, s.step_id);
    if (a.ok() && a->has_value()) d.approvals.push_back(**a);
  }
  Result<std::vector<Event>> events = store.GetEvents(run_id);
  if (!events.ok()) return events.status();
  d.nothing_undone = StepsWithNothingUndone(*events);
  switch (format) {
    case ReportFormat::kMarkdown: return Markdown(d);
    case ReportFormat::kJson: return Json(d);
    case ReportFormat::kHtml: return HtmlPage(d);
  }
  return Status::Internal("format");
}

}  // namespace runbook
