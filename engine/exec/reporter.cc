#include "engine/exec/reporter.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "engine/core/clock.h"
#include "engine/core/duration.h"

namespace runbook {

// Text for a terminal: control characters from a runbook (an id, a
// message) would move the cursor, recolour or rewrite the screen; they show
// as \xNN instead (C0 but newline and tab, DEL, and C1 as UTF-8 encodes it).
std::string TerminalSafe(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const bool c1 = c == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
                    static_cast<unsigned char>(s[i + 1]) <= 0x9f;
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f || c1) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c1 ? static_cast<unsigned char>(s[++i]) : c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

namespace {

const char* kReset = "\033[0m";

// "2026-12-05T02:14:07.042Z": FormatUtc with milliseconds.
std::string UtcMillis(int64_t ms) {
  std::string s = FormatUtc(ms);
  char frac[8];
  std::snprintf(frac, sizeof frac, ".%03d", static_cast<int>(ms % 1000));
  s.insert(s.size() - 1, frac);
  return s;
}

const char* StatusColor(StepStatus s) {
  switch (s) {
    case StepStatus::kSucceeded:
    case StepStatus::kUndone:
      return "\033[32m";
    case StepStatus::kFailed:
    case StepStatus::kUndoFailed:
      return "\033[31m";
    case StepStatus::kUnknown:
    case StepStatus::kWaiting:
      return "\033[33m";
    default:
      return "\033[2m";
  }
}

const char* StatusWord(StepStatus s) {
  switch (s) {
    case StepStatus::kSucceeded:
      return "ok";
    case StepStatus::kFailed:
      return "FAILED";
    case StepStatus::kSkipped:
      return "skipped";
    case StepStatus::kUnknown:
      return "UNKNOWN";
    case StepStatus::kWaiting:
      return "waiting";
    case StepStatus::kUndone:
      return "undone";
    case StepStatus::kUndoFailed:
      return "UNDO FAILED";
    case StepStatus::kUndoing:
      return "undoing";
    case StepStatus::kRunning:
      return "running";
    case StepStatus::kPending:
      return "pending";
  }
  return "?";
}

class TextReporter : public Reporter {
 public:
  TextReporter(FILE* out, bool color, bool verbose, const Redactor* r)
      : out_(out),
        color_(color),
        verbose_(verbose),
        redactor_(r),
        terminal_(isatty(fileno(out)) != 0) {}

  void RunStarted(const RunRecord& run, const std::string& what) override {
    std::lock_guard<std::mutex> lock(mu_);
    fprintf(out_, "%s %s  %s%s\n", Paint("\033[1m", what).c_str(), run.id.c_str(),
            TerminalSafe(run.runbook_name).c_str(),
            run.dry_run ? "  (rehearsal: nothing will change)" : "");
    fflush(out_);
  }
  void StepStarted(const std::string& id, const std::string& change) override {
    if (!verbose_) return;
    std::lock_guard<std::mutex> lock(mu_);
    fprintf(out_, "  ..       %s  %s\n", TerminalSafe(id).c_str(), R(change).c_str());
    fflush(out_);
  }
  void StepFinished(const StepRecord& s, const std::string& detail) override {
    std::lock_guard<std::mutex> lock(mu_);
    ClearProgress();
    std::string word = StatusWord(s.status);
    std::string padded = word + std::string(word.size() < 8 ? 8 - word.size() : 1, ' ');
    std::string line =
        "  " + Paint(StatusColor(s.status), padded) + " " + TerminalSafe(StepLabel(s));
    if (!s.action.empty()) line += "  " + TerminalSafe(s.action);
    if (s.status != StepStatus::kSkipped && s.duration_ms > 0) {
      line += "  " + FormatDuration(Millis(s.duration_ms));
    }
    if (s.attempts > 1) line += "  (" + std::to_string(s.attempts) + " attempts)";
    if (!detail.empty()) line += "  " + R(detail);
    fprintf(out_, "%s\n", line.c_str());
    fflush(out_);
  }
  void Log(const std::string& id, LogLevel level, const std::string& msg) override {
    if (level == LogLevel::kDebug && !verbose_) return;
    std::lock_guard<std::mutex> lock(mu_);
    ClearProgress();
    const char* tag = level == LogLevel::kWarn    ? "warn"
                      : level == LogLevel::kError ? "error"
                                                  : "log";
    fprintf(out_, "           %s: %s: %s\n", TerminalSafe(id).c_str(), tag, R(msg).c_str());
    fflush(out_);
  }
  void Progress(const std::string& id, const ProgressInfo& p) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!terminal_) {
      // A log, not a screen: a line with the time, the first at once and
      // then at most one per step every kProgressEvery.
      const SteadyTime now = Clock::Real().Steady();
      auto [last, fresh] = progress_at_.emplace(id, now);
      if (!fresh && now - last->second < kProgressEvery) return;
      last->second = now;
      fprintf(out_, "  ..       %s  %s  %s\n",
              UtcMillis(Clock::Real().NowMs()).substr(11, 8).c_str(), TerminalSafe(id).c_str(),
              R(DescribeProgress(p)).c_str());
      fflush(out_);
      return;
    }
    fprintf(out_, "\r\033[K  ..       %s  %s", TerminalSafe(id).c_str(),
            R(DescribeProgress(p)).c_str());
    fflush(out_);
    progress_shown_ = true;
  }
  void RunFinished(const RunRecord& run, int code, const std::string& message) override {
    std::lock_guard<std::mutex> lock(mu_);
    ClearProgress();
    const char* color = code == 0 ? "\033[32m" : "\033[31m";
    fprintf(out_, "%s\n",
            Paint(color, R(message) + " (exit " + std::to_string(code) + ")").c_str());
    fflush(out_);
  }

 private:
  std::string R(const std::string& s) const {
    return TerminalSafe(redactor_ ? redactor_->Redact(s) : s);
  }
  std::string Paint(const char* color, const std::string& s) const {
    return color_ ? std::string(color) + s + kReset : s;
  }
  void ClearProgress() {
    if (progress_shown_) fprintf(out_, "\r\033[K");
    progress_shown_ = false;
  }
  std::mutex mu_;
  FILE* out_;
  bool color_, verbose_;
  const Redactor* redactor_;
  const bool terminal_;
  bool progress_shown_ = false;
  std::map<std::string, SteadyTime> progress_at_;  // off a terminal: each step's last line
};

class JsonReporter : public Reporter {
 public:
  JsonReporter(FILE* out, const Redactor* r) : out_(out), redactor_(r) {}
  void RunStarted(const RunRecord& run, const std::string& what) override {
    Emit({{"event", "run.start"},
          {"run", run.id},
          {"runbook", run.runbook_name},
          {"dry_run", run.dry_run},
          {"what", what}});
  }
  void StepStarted(const std::string& id, const std::string& change) override {
    Emit({{"event", "step.start"}, {"step", id}, {"change", change}});
  }
  void StepFinished(const StepRecord& s, const std::string& detail) override {
    Emit({{"event", "step.end"},
          {"run", s.run_id},
          {"step", s.step_id},
          {"item", s.item},
          {"status", StepStatusName(s.status)},
          {"action", s.action},
          {"duration_ms", s.duration_ms},
          {"attempts", s.attempts},
          {"detail", detail},
          {"error", s.error},
          {"result", s.result}});  // redacted, as the journal keeps it
  }
  void Log(const std::string& id, LogLevel level, const std::string& msg) override {
    static const char* kLevels[] = {"debug", "info", "warn", "error"};
    Emit({{"event", "log"},
          {"step", id},
          {"level", kLevels[static_cast<int>(level)]},
          {"message", msg}});
  }
  void Progress(const std::string& id, const ProgressInfo& p) override {
    Value e{{"event", "progress"},
            {"step", id},
            {"what", p.what},
            {"bytes", p.done_bytes},
            {"total_bytes", p.total_bytes},
            {"rows", p.done_rows},
            {"seconds", p.seconds}};
    if (p.seconds > 0) {
      const double rate = p.done_bytes / p.seconds;
      e["bytes_per_second"] = rate;
      if (p.total_bytes > 0 && rate > 0) {
        e["eta_seconds"] = std::max(0.0, (p.total_bytes - p.done_bytes) / rate);
      }
    }
    e["message"] = DescribeProgress(p);
    Emit(e);
  }
  void RunFinished(const RunRecord& run, int code, const std::string& message) override {
    Emit({{"event", "run.end"},
          {"run", run.id},
          {"status", RunStatusName(run.status)},
          {"exit_code", code},
          {"message", message}});
  }

 private:
  void Emit(Value v) {
    v["at"] = UtcMillis(Clock::Real().NowMs());
    if (redactor_) v = redactor_->Redact(v);
    std::lock_guard<std::mutex> lock(mu_);
    fprintf(out_, "%s\n", v.dump(-1, ' ', false, Value::error_handler_t::replace).c_str());
    fflush(out_);
  }
  std::mutex mu_;
  FILE* out_;
  const Redactor* redactor_;
};

}  // namespace

std::unique_ptr<Reporter> MakeReporter(LogFormat format, FILE* out, bool color, bool verbose,
                                       const Redactor* redactor) {
  if (format == LogFormat::kJson) return std::make_unique<JsonReporter>(out, redactor);
  return std::make_unique<TextReporter>(out, color, verbose, redactor);
}

}  // namespace runbook
