#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "engine/core/byte_size.h"
#include "engine/core/duration.h"
#include "engine/core/process.h"
#include "engine/core/redact.h"
#include "engine/core/registry.h"
#include "engine/core/rehearsal_plan.h"
#include "engine/core/renewal.h"
#include "engine/core/result_shape.h"
#include "engine/core/text.h"
#include "engine/exec/reporter.h"
#include "engine/exec/window.h"
#include "engine/lua/template.h"

using namespace runbook;

TEST_CASE("durations parse the forms runbooks use and reject the rest", "[core]") {
  CHECK(ParseDuration("500ms") == std::chrono::milliseconds(500));
  CHECK(ParseDuration("30s") == std::chrono::seconds(30));
  CHECK(ParseDuration("10m") == std::chrono::minutes(10));
  CHECK(ParseDuration("2h") == std::chrono::hours(2));
  CHECK(ParseDuration("1h30m") == std::chrono::minutes(90));
  for (const char* bad : {"", "5", "5 minutes", "m", "1.5s", "-1s", "10x", "s10"}) {
    INFO(bad);
    CHECK_FALSE(ParseDuration(bad).has_value());
  }
  CHECK(FormatDuration(std::chrono::milliseconds(1500)) == "1.5s");
  CHECK(FormatDuration(std::chrono::milliseconds(2000)) == "2s");
  CHECK(FormatDuration(std::chrono::seconds(90)) == "1m30s");
}

TEST_CASE("a result is checked against its declared shape, nested fields by path", "[core]") {
  const FieldSpec spec = MapResult({
      Field("database", FieldType::kString, "the database"),
      Optional(Field("seconds", FieldType::kNumber, "how long")),
      ListOfMaps("tables", "one per table",
                 {Field("name", FieldType::kString, ""), Field("rows", FieldType::kInt, "")}),
      ListField("skipped", FieldType::kString, ""),
      MapField("counts", "rows by table", {}, /*open=*/true),
  });
  Value good = Value::parse(R"({"database": "app", "seconds": 1.5,
      "tables": [{"name": "a", "rows": 3}], "skipped": [], "counts": {"t": 1}})");
  CHECK(CheckResultShape(spec, good).empty());
  good.erase("seconds");  // optional: absent
  CHECK(CheckResultShape(spec, good).empty());
  good["seconds"] = 2;  // an int is a number
  CHECK(CheckResultShape(spec, good).empty());

  auto errors = [&](const char* json) { return CheckResultShape(spec, Value::parse(json)); };
  using V = std::vector<std::string>;
  CHECK(errors(R"({"database": "app", "tables": [{"name": "a", "rows": "3"}], "skipped": [],
      "counts": {}})") == V{"tables[0].rows: expected int, got string"});
  CHECK(errors(R"({"database": "app", "tables": [{"name": "a", "rows": 3, "bytes": 9}],
      "skipped": [], "counts": {}})") == V{"tables[0].bytes: not documented"});
  CHECK(errors(R"({"tables": [], "skipped": [1], "counts": {}, "extra": true})") ==
        V{"database: missing", "skipped[0]: expected string, got int", "extra: not documented"});
  CHECK(errors(R"({"database": null, "tables": {}, "skipped": [], "counts": []})") ==
        V{"database: missing", "tables: expected list, got map", "counts: expected map, got list"});
  CHECK(errors("[1]") == V{"result: expected map, got list"});

  const FieldSpec rows = ListResult("rows", {}, /*open=*/true);
  CHECK(CheckResultShape(rows, Value::parse(R"([{"any": 1, "column": "x"}])")).empty());
  CHECK(CheckResultShape(rows, Value::parse(R"([3])")) == V{"[0]: expected map, got int"});
  CHECK(CheckResultShape(AnyResult("nothing"), Value()).empty());
}

TEST_CASE("sizes parse bytes and PostgreSQL's units and reject the rest", "[core]") {
  CHECK(ParseByteSize("0") == 0);
  CHECK(ParseByteSize("1048576") == 1048576);
  CHECK(ParseByteSize("64kB") == 64 * 1024);
  CHECK(ParseByteSize("256MB") == int64_t{256} << 20);
  CHECK(ParseByteSize("256 MiB") == int64_t{256} << 20);
  CHECK(ParseByteSize("2GB") == int64_t{2} << 30);
  CHECK(ParseByteSize("1TiB") == int64_t{1} << 40);
  for (const char* bad : {"", "MB", "-1", "1.5GB", "10 megabytes", "1mb", "1 M", "5000000TB",
                          "99999999999999999999"}) {
    INFO(bad);
    CHECK_FALSE(ParseByteSize(bad).has_value());
  }
  Schema s{"", {{"split", ArgType::kSize}}, {}, ""};
  CHECK(CheckArgs(s, Value{{"split", 0}}).empty());
  CHECK(CheckArgs(s, Value{{"split", "64MB"}}).empty());
  auto errs = CheckArgs(s, Value{{"split", "64 megs"}});
  REQUIRE(errs.size() == 1);
  CHECK(errs[0].message ==
        "argument 'split': expected size such as 0, 64MB or 1GiB, got '64 megs'");
  errs = CheckArgs(s, Value{{"split", -5}});
  REQUIRE(errs.size() == 1);
  CHECK_THAT(errs[0].message, Catch::Contains("expected size"));
}

TEST_CASE("the redactor hides secrets and conninfo passwords everywhere", "[core][secrets]") {
  Redactor r;
  r.Add("hunter2-secret");
  CHECK(r.Redact("pw is hunter2-secret!") == "pw is ***!");
  CHECK(r.Redact("host=db password=abc123 user=x") == "host=db password=*** user=x");
  CHECK(r.Redact("host=db password='a b c' user=x") == "host=db password=*** user=x");
  CHECK(r.Redact("postgresql://app:s3cret@db:5432/x") == "postgresql://app:***@db:5432/x");
  Value v{{"a", {"x hunter2-secret"}}, {"b", {{"c", "hunter2-secret"}}}, {"n", 1}};
  Value red = r.Redact(v);
  CHECK(red.dump().find("hunter2") == std::string::npos);
  CHECK(red["n"] == 1);
}

TEST_CASE("the redactor masks a secret's encodings, short secrets as words, and stays linear",
          "[core][secrets]") {
  Redactor r;
  r.Add("Tr0ub4dor&3horse");
  r.Add("q7");
  CHECK(r.Redact("pw Tr0ub4dor&3horse") == "pw ***");
  CHECK(r.Redact("url-encoded Tr0ub4dor%263horse") == "url-encoded ***");
  CHECK(r.Redact("b64 VHIwdWI0ZG9yJjNob3JzZQ==") == "b64 ***");
  // inside a longer base64 value (a Kubernetes Secret holding a config file)
  const std::string inside = r.Redact("cGFzc3dvcmQ6IFRyMHViNGRvciYzaG9yc2UK");
  CHECK(inside.find("***") != std::string::npos);
  CHECK(inside.find("RyMHViNGRvciYzaG9yc2") == std::string::npos);
  CHECK(r.Redact("hex 547230756234646f722633686f727365") == "hex ***");
  CHECK(r.Redact("code [q7] and q7x and aq7") == "code [***] and q7x and aq7");
  Value v = r.Redact(Value{{"a", "q7"}, {"b", {"Tr0ub4dor&3horse", 1}}});
  CHECK(v == Value{{"a", "***"}, {"b", {"***", 1}}});
  // Long inputs: linear, no recursion (std::regex overflowed the stack here).
  std::string long_text = "postgresql://u:" + std::string(200000, 'x') + "@h/db password=" +
                          std::string(200000, 'y');
  std::string out = r.Redact(long_text);
  CHECK(out == "postgresql://u:***@h/db password=***");
}

TEST_CASE("the text scanners read names and numbers linearly", "[core][text]") {
  CHECK(IsDecimalInt("-42"));
  CHECK_FALSE(IsDecimalInt("4a"));
  CHECK(IsDecimalInt(std::string(100000, '9')));  // a 100,000-digit scalar: no stack overflow
  CHECK(IsFloat("1.5e-3"));
  CHECK(IsFloat(".5"));
  CHECK(IsFloat("5."));
  CHECK_FALSE(IsFloat("."));
  CHECK_FALSE(IsFloat("1e"));
  CHECK(IsOctalInt("0o17"));
  CHECK(IsHexInt("0xfF"));
  CHECK(MatchesName(std::string(50000, 'a'), IsIdentStart, IsIdentChar));
}

TEST_CASE("argument checks name the argument and suggest the nearest one", "[core][registry]") {
  Schema s{"",
           {{"conn", ArgType::kConnection, true},
            {"replicas", ArgType::kInt, true},
            {"deployment", ArgType::kString},
            {"statefulset", ArgType::kString},
            {"timeout", ArgType::kDuration},
            {"mode", ArgType::kString, false, "", {"count", "checksum"}}},
           {{"deployment", "statefulset"}},
           ""};
  auto errs = CheckArgs(s, Value{{"conn", "c"}, {"replica", 1}, {"deployment", "d"}});
  REQUIRE(errs.size() == 2);
  CHECK(errs[0].arg == "replica");
  CHECK(errs[0].suggestion == "replicas");
  CHECK(errs[1].message == "missing required argument 'replicas'");
  errs = CheckArgs(
      s,
      Value{{"conn", "c"}, {"replicas", "three"}, {"timeout", "5 minutes"}, {"mode", "cheksum"}});
  REQUIRE(errs.size() == 4);
  CHECK(errs[0].message == "argument 'replicas': expected int, got string");
  CHECK_THAT(errs[1].message, Catch::Contains("expected duration such as 500ms"));
  CHECK(errs[2].suggestion == "checksum");
  CHECK_THAT(errs[3].message, Catch::Contains("needs one of 'deployment', 'statefulset'"));
  // A template is accepted for any type: it is checked after expansion.
  CHECK(CheckArgs(s, Value{{"conn", "c"}, {"replicas", "${{ params.n }}"}, {"statefulset", "s"}})
            .empty());
}

TEST_CASE("progress shows bytes of the total, rows, the rate and the time left",
          "[core][progress]") {
  ProgressInfo p;
  p.what = "table data (now public.t)";
  p.done_bytes = 100 << 20;
  CHECK(DescribeProgress(p) == "table data (now public.t): 100.0 MiB");
  p.total_bytes = 400 << 20;
  p.done_rows = 1234567;
  CHECK(DescribeProgress(p) == "table data (now public.t): 100.0 of 400.0 MiB, 1234567 rows");
  p.seconds = 4;  // 25 MiB/s, 300 MiB to go
  CHECK(DescribeProgress(p) ==
        "table data (now public.t): 100.0 of 400.0 MiB, 1234567 rows, 25.0 MiB/s, about 12 s left");
  p.done_bytes = 500 << 20;  // a total that was an estimate: never a negative time
  CHECK_THAT(DescribeProgress(p), Catch::EndsWith(", about 0 s left"));

  // The JSON log carries the same as numbers.
  char* buf = nullptr;
  size_t len = 0;
  FILE* out = open_memstream(&buf, &len);
  std::unique_ptr<Reporter> json = MakeReporter(LogFormat::kJson, out, false, false, nullptr);
  p.done_bytes = 100 << 20;
  json->Progress("copy", p);
  fclose(out);
  Value e = Value::parse(std::string(buf, len));
  free(buf);
  CHECK(e["event"] == "progress");
  CHECK(e["bytes"] == 100 << 20);
  CHECK(e["total_bytes"] == 400 << 20);
  CHECK(e["rows"] == 1234567);
  CHECK(e["bytes_per_second"].get<double>() == Approx(25.0 * 1048576));
  CHECK(e["eta_seconds"].get<double>() == Approx(12.0));
}

TEST_CASE("templates split, rewrite dashed step ids and report references", "[core][template]") {
  auto parts = SplitTemplate("a ${{ x }} b ${{y}}");
  REQUIRE(parts.ok());
  REQUIRE(parts->size() == 4);
  CHECK((*parts)[1].text == "x");
  CHECK((*parts)[3].text == "y");
  CHECK_FALSE(SplitTemplate("a ${{ x ").ok());
  CHECK(IsSingleExpression("${{ params.tables }}"));
  CHECK_FALSE(IsSingleExpression("x ${{ params.tables }}"));
  std::set<std::string> ids{"scale-down", "copy"};
  CHECK(RewriteDashedIds("steps.scale-down.result.replicas - 1", ids) ==
        "steps[\"scale-down\"].result.replicas - 1");
  CHECK(RewriteDashedIds("steps.copy.result", ids) == "steps.copy.result");
  CHECK(ReferencedSteps("steps.a.result + steps[\"b-c\"].x") == std::set<std::string>{"a", "b-c"});
  CHECK(ReferencedParams("params.tables[1] .. params['db']") ==
        std::set<std::string>{"tables", "db"});
}

TEST_CASE("a maintenance window knows whether now is inside and when it closes", "[core][window]") {
  Window w;
  w.timezone = "Asia/Singapore";  // UTC+8, no DST
  w.days = {6, 0};                // sat, sun
  w.start_minute = 2 * 60;
  w.end_minute = 4 * 60;
  // Saturday 2026-11-21 02:30 SGT = Friday 2026-11-20 18:30 UTC.
  int64_t inside = 1795199400LL * 1000;
  WindowState s = CheckWindow(w, inside);
  CHECK(s.inside);
  CHECK(s.end_ms - inside == 90 * 60 * 1000);
  CHECK_FALSE(CheckWindow(w, inside + 2 * 3600 * 1000).inside);   // 04:30
  CHECK_FALSE(CheckWindow(w, inside - 24 * 3600 * 1000).inside);  // Friday 02:30
  // A window that crosses midnight belongs to the day it starts.
  Window night;
  night.timezone = "UTC";
  night.days = {5};  // fri
  night.start_minute = 23 * 60;
  night.end_minute = 60;
  int64_t sat_0030 = 1795221000LL * 1000;  // Saturday 2026-11-21 00:30 UTC
  CHECK(CheckWindow(night, sat_0030).inside);
  CHECK_FALSE(CheckWindow(night, sat_0030 + 24 * 3600 * 1000).inside);
}

TEST_CASE("a process timeout kills the whole process group", "[core][process]") {
  ProcessSpec spec;
  // The child starts a grandchild and waits; both must die at the deadline.
  spec.argv = {"bash", "-c", "sleep 30 & echo $!; wait"};
  spec.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
  auto r = ProcessRunner::Real().Run(spec);
  REQUIRE(r.ok());
  CHECK(r->timed_out);
  int grandchild = std::atoi(r->out.c_str());
  REQUIRE(grandchild > 0);
  // Gone, or a zombie waiting for init to reap it: either way not running.
  usleep(200000);
  std::ifstream stat("/proc/" + std::to_string(grandchild) + "/stat");
  std::string pid, comm, state;
  if (stat >> pid >> comm >> state) CHECK(state == "Z");
}

TEST_CASE("a process gets its stdin, env and cwd and its streams are read apart",
          "[core][process]") {
  ProcessSpec spec;
  spec.argv = {"bash", "-c", "cat; echo \"$RB_X\" >&2; pwd"};
  spec.env = {{"RB_X", "from-env"}};
  spec.cwd = "/tmp";
  spec.stdin_data = "from-stdin\n";
  auto r = ProcessRunner::Real().Run(spec);
  REQUIRE(r.ok());
  CHECK(r->exit_code == 0);
  CHECK(r->out == "from-stdin\n/tmp\n");
  CHECK(r->err == "from-env\n");
  ProcessSpec missing;
  missing.argv = {"/nonexistent/program"};
  CHECK_FALSE(ProcessRunner::Real().Run(missing).ok());
}

TEST_CASE("a child that exits without reading its stdin does not take the runner down",
          "[process]") {
  // 4 MiB: far past a pipe's buffer; the writes after `true` exits would
  // raise SIGPIPE and kill this process, were it not ignored.
  ProcessSpec spec;
  spec.argv = {"true"};
  spec.stdin_data = std::string(4 << 20, 'x');
  for (int i = 0; i < 3; ++i) {
    Result<ProcessResult> r = ProcessRunner::Real().Run(spec);
    REQUIRE(r.ok());
    CHECK(r->exit_code == 0);
  }
  spec.argv = {"head", "-c", "10"};
  Result<ProcessResult> r = ProcessRunner::Real().Run(spec);
  REQUIRE(r.ok());
  CHECK(r->out == "xxxxxxxxxx");
}

TEST_CASE(
    "a rehearsal plan keeps the first maker, forgets it once dropped, and replays its "
    "journal",
    "[core][rehearsal]") {
  RehearsalPlan plan;
  std::vector<std::pair<std::string, std::string>> journal;
  plan.SetJournal(
      [&](const std::string& line, const std::string& step) { journal.emplace_back(line, step); });
  CHECK(plan.empty());
  plan.Note("db:a", "create");
  plan.Note("db:a", "restore");  // a second maker: the first keeps it
  CHECK(plan.StepFor("db:a") == "create");
  CHECK(plan.GoneBy("db:a").empty());
  plan.NoteGone("db:a", "drop");
  CHECK(plan.StepFor("db:a").empty());
  CHECK(plan.GoneBy("db:a") == "drop");
  plan.Note("db:a", "again");
  CHECK(plan.StepFor("db:a") == "again");
  CHECK(plan.GoneBy("db:a").empty());
  plan.NoteGone("db:b", "drop-b");  // gone without being planned: it exists now
  CHECK(plan.GoneBy("db:b") == "drop-b");
  // The journal has every note that changed the plan, in order.
  using Line = std::pair<std::string, std::string>;
  CHECK(journal == std::vector<Line>{{"made db:a", "create"},
                                     {"gone db:a", "drop"},
                                     {"made db:a", "again"},
                                     {"gone db:b", "drop-b"}});
  RehearsalPlan resumed;
  for (const auto& [line, step] : journal) resumed.Replay(line, step);
  CHECK(resumed.StepFor("db:a") == "again");
  CHECK(resumed.GoneBy("db:b") == "drop-b");
  resumed.Replay("bogus db:c", "x");
  CHECK(resumed.StepFor("db:c").empty());
  CHECK(resumed.GoneBy("db:c").empty());

  // A step that runs again (a retry, a resume) takes its own notes back:
  // what it removed is as an earlier step left it.
  plan.Forget("again");
  CHECK(plan.GoneBy("db:a") == "drop");
  plan.Forget("drop");
  CHECK(plan.StepFor("db:a") == "create");
  CHECK(journal.back() == Line{"forget", "drop"});
  plan.Forget("nobody");  // nothing of its: nothing journaled
  CHECK(journal.back() == Line{"forget", "drop"});
  // A removal between two makers taken back: the first maker keeps it.
  plan.NoteGone("db:c", "drop-c");
  plan.Note("db:c", "make-c");
  plan.Note("db:c", "make-c-too");  // made already: not a maker of its own
  CHECK(plan.StepFor("db:c") == "make-c");
  RehearsalPlan middle;
  middle.Note("db:d", "create");
  middle.NoteGone("db:d", "drop");
  middle.Note("db:d", "again");
  middle.Forget("drop");
  CHECK(middle.StepFor("db:d") == "create");
  CHECK(middle.GoneBy("db:d").empty());
  RehearsalPlan replayed;
  for (const auto& [line, step] : journal) replayed.Replay(line, step);
  CHECK(replayed.StepFor("db:a") == "create");
  CHECK(replayed.GoneBy("db:b") == "drop-b");
}

TEST_CASE(
    "a rehearsal plan takes back one note of a step, leaving its others and the journal whole",
    "[core][rehearsal]") {
  RehearsalPlan plan;
  std::vector<std::pair<std::string, std::string>> journal;
  plan.SetJournal(
      [&](const std::string& line, const std::string& step) { journal.emplace_back(line, step); });
  // One Lua step: a database made by one call, then a rename (a TO b; b TO
  // c) by another whose script fails whole.
  plan.Note("db:made", "lua");
  plan.Note("db:a", "create-a");
  plan.NoteGone("db:a", "lua");
  bool noted = false;
  CHECK(plan.Claim("db:b", "lua", &noted).empty());
  CHECK(noted);
  CHECK(plan.Claim("db:b", "lua", &noted).empty());  // its own already: not noted again
  CHECK_FALSE(noted);
  plan.NoteGone("db:b", "lua");
  CHECK(plan.Claim("db:made", "other", &noted) == "lua");
  CHECK_FALSE(noted);
  // Taken back latest first, as the script noted them.
  for (const char* key : {"db:b", "db:b", "db:a"}) plan.Unnote(key, "lua");
  CHECK(plan.StepFor("db:made") == "lua");  // the other call's note stays
  CHECK(plan.StepFor("db:a") == "create-a");
  CHECK(plan.GoneBy("db:a").empty());
  CHECK(plan.StepFor("db:b").empty());
  CHECK(plan.GoneBy("db:b").empty());
  plan.Unnote("db:nothing", "lua");  // nothing of it: nothing journaled
  CHECK(journal.back() == std::pair<std::string, std::string>{"unnote db:a", "lua"});
  RehearsalPlan replayed;
  for (const auto& [line, step] : journal) replayed.Replay(line, step);
  CHECK(replayed.StepFor("db:made") == "lua");
  CHECK(replayed.StepFor("db:a") == "create-a");
  CHECK(replayed.StepFor("db:b").empty());
  CHECK(replayed.GoneBy("db:b").empty());
}

TEST_CASE("a rehearsal plan's claim checks and notes at once: of makers side by side, one wins",
          "[core][rehearsal]") {
  RehearsalPlan plan;
  CHECK(plan.Claim("db:x", "make[1]").empty());
  CHECK(plan.Claim("db:x", "make[1]").empty());  // its own: still its
  CHECK(plan.Claim("db:x", "make[2]") == "make[1]");
  CHECK(plan.StepFor("db:x") == "make[1]");
  plan.NoteGone("db:x", "drop");
  CHECK(plan.Claim("db:x", "make[2]").empty());  // free again
  CHECK(plan.StepFor("db:x") == "make[2]");

  constexpr int kThreads = 8;
  for (int round = 0; round < 50; ++round) {
    RehearsalPlan race;
    std::vector<std::string> got(kThreads);
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] { got[i] = race.Claim("db:y", "item" + std::to_string(i)); });
    }
    for (auto& th : threads) th.join();
    const std::string winner = race.StepFor("db:y");
    int won = 0;
    for (int i = 0; i < kThreads; ++i) {
      if (got[i].empty()) {
        ++won;
        CHECK(winner == "item" + std::to_string(i));
      } else {
        CHECK(got[i] == winner);
      }
    }
    CHECK(won == 1);
  }
}

TEST_CASE(
    "a run lock's length is RUNBOOK_LEASE_SECONDS from 3 to 86400, else 30; other values "
    "are refused",
    "[core][lock]") {
  unsetenv("RUNBOOK_LEASE_SECONDS");
  CHECK(*LeaseLength() == std::chrono::seconds(30));
  for (const char* good : {"3", "45", "86400"}) {
    setenv("RUNBOOK_LEASE_SECONDS", good, 1);
    REQUIRE(LeaseLength().ok());
    CHECK(LeaseLength()->count() == std::atol(good));
  }
  for (const char* bad : {"2", "86401", "30s", " 30", "-4", "x"}) {
    setenv("RUNBOOK_LEASE_SECONDS", bad, 1);
    INFO(bad);
    CHECK(LeaseLength().status().code() == Status::Code::kInvalid);
    CHECK_THAT(LeaseLength().status().message(), Catch::Contains("RUNBOOK_LEASE_SECONDS"));
  }
  setenv("RUNBOOK_LEASE_SECONDS", "", 1);  // set but empty: as unset
  CHECK(*LeaseLength() == std::chrono::seconds(30));
  unsetenv("RUNBOOK_LEASE_SECONDS");
}

TEST_CASE("a renewal thread renews at the pauses it is given until stopped or done",
          "[core][lock]") {
  using std::chrono::milliseconds;
  SECTION("stopped: no call starts afterwards") {
    std::atomic<int> calls{0};
    RenewalThread t(milliseconds(1), [&]() -> std::optional<milliseconds> {
      ++calls;
      return milliseconds(1);
    });
    for (int i = 0; i < 5000 && calls < 3; ++i) std::this_thread::sleep_for(milliseconds(1));
    REQUIRE(calls >= 3);
    t.Stop();
    const int seen = calls;
    std::this_thread::sleep_for(milliseconds(20));
    CHECK(calls == seen);
    t.Stop();  // again: harmless
  }
  SECTION("done: nothing left to renew ends the calls") {
    std::atomic<int> calls{0};
    RenewalThread t(milliseconds(1), [&]() -> std::optional<milliseconds> {
      return ++calls < 2 ? std::optional<milliseconds>(milliseconds(1)) : std::nullopt;
    });
    for (int i = 0; i < 5000 && calls < 2; ++i) std::this_thread::sleep_for(milliseconds(1));
    std::this_thread::sleep_for(milliseconds(20));
    CHECK(calls == 2);  // and no third
  }
  SECTION("a long pause is cut short by Stop") {
    std::atomic<int> calls{0};
    auto start = std::chrono::steady_clock::now();
    {
      RenewalThread t(std::chrono::hours(1), [&]() -> std::optional<milliseconds> {
        ++calls;
        return milliseconds(1);
      });
    }
    CHECK(calls == 0);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
  }
}
