// What a run prints: off a terminal (CI, a Kubernetes Job's log) progress is
// timestamped lines, not redraws; the JSON log has milliseconds and results.
#include "engine/exec/reporter.h"

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <regex>
#include <sstream>

using namespace runbook;

namespace {

// What `write` printed through a reporter of `format` (not a terminal).
template <typename F>
std::string Printed(LogFormat format, F write) {
  char* buf = nullptr;
  size_t len = 0;
  FILE* f = open_memstream(&buf, &len);
  REQUIRE(f);
  Redactor redactor;
  redactor.Add("s3cret-Pw");
  {
    std::unique_ptr<Reporter> r = MakeReporter(format, f, /*color=*/false, false, &redactor);
    write(*r);
  }
  fclose(f);
  std::string out(buf, len);
  free(buf);
  return out;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

}  // namespace

TEST_CASE("off a terminal, progress is a timestamped line per step at a sane interval",
          "[reporter]") {
  ProgressInfo p;
  p.what = "public.t";
  p.done_bytes = 10 << 20;
  p.total_bytes = 40 << 20;
  p.seconds = 2;
  const std::string out = Printed(LogFormat::kText, [&](Reporter& r) {
    r.Progress("copy", p);
    r.Progress("copy", p);  // within kProgressEvery of the last: not repeated
    r.Progress("dump", p);  // another step has its own
  });
  CHECK(out.find('\r') == std::string::npos);  // no redraw
  CHECK(out.find('\033') == std::string::npos);
  const std::vector<std::string> lines = Lines(out);
  REQUIRE(lines.size() == 2);
  const std::regex line(
      R"(  \.\.       \d\d:\d\d:\d\d  (copy|dump)  public\.t: 10\.0 of 40\.0 MiB.*)");
  CHECK(std::regex_match(lines[0], line));
  CHECK(lines[0].find("  copy  ") != std::string::npos);
  CHECK(std::regex_match(lines[1], line));
  CHECK(lines[1].find("  dump  ") != std::string::npos);
}

TEST_CASE("the JSON log has millisecond timestamps and each step's result, redacted",
          "[reporter]") {
  StepRecord s;
  s.run_id = "r1";
  s.step_id = "q";
  s.status = StepStatus::kSucceeded;
  s.result = {{"rows", 3}, {"dsn", "password=s3cret-Pw"}};
  const std::string out = Printed(LogFormat::kJson, [&](Reporter& r) { r.StepFinished(s, ""); });
  const std::vector<std::string> lines = Lines(out);
  REQUIRE(lines.size() == 1);
  Value v = Value::parse(lines[0]);
  CHECK(v["event"] == "step.end");
  CHECK(v["result"]["rows"] == 3);
  CHECK(out.find("s3cret-Pw") == std::string::npos);
  CHECK(std::regex_match(v["at"].get<std::string>(),
                         std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")));
}
