// A state store that stops taking writes (its filesystem full, or remounted
// read-only) in the middle of a run: nothing more may act, rollback
// included, and the run ends with exit 6 naming the store's error. Real
// filesystems: a small tmpfs of the test's own (the tests run as root).
#include <sys/mount.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "tests/e2e/e2e_util.h"

namespace runbook::e2e {
namespace {

// A tmpfs of `kib` KiB mounted on a directory of the test, unmounted after.
class SmallFs {
 public:
  SmallFs(const E2e& t, int kib) : dir_(t.P("fs")) {
    std::filesystem::create_directories(dir_);
    REQUIRE(geteuid() == 0);  // CI runs the suite as root, as the README says
    std::string opts = "size=" + std::to_string(kib) + "k,mode=0755";
    REQUIRE(mount("tmpfs", dir_.c_str(), "tmpfs", 0, opts.c_str()) == 0);
  }
  ~SmallFs() { umount2(dir_.c_str(), MNT_DETACH); }
  const std::string& dir() const { return dir_; }
  void ReadWrite() const {
    REQUIRE(mount("tmpfs", dir_.c_str(), "tmpfs", MS_REMOUNT, nullptr) == 0);
  }
  void ReadOnly() const {
    REQUIRE(mount("tmpfs", dir_.c_str(), "tmpfs", MS_REMOUNT | MS_RDONLY, nullptr) == 0);
  }

 private:
  std::string dir_;
};

// Three steps: `made` creates a file (undone by removing it), `fault` breaks
// the store, `later` would create another file.
std::string Runbook(const E2e& t, const std::vector<std::string>& fault_argv) {
  std::string argv;
  for (const auto& a : fault_argv) argv += (argv.empty() ? "" : ", ") + ("\"" + a + "\"");
  return t.Write("store.yaml",
                 "format: 1\nname: store-faults\nsteps:\n"
                 "  - id: made\n    exec: {argv: [touch, \"" + t.P("made") + "\"]}\n"
                 "    rollback: {exec: {argv: [rm, -f, \"" + t.P("made") + "\"]}}\n"
                 "  - id: fault\n    exec: {argv: [" + argv + "]}\n    continue_on_error: true\n"
                 "  - id: later\n    exec: {argv: [touch, \"" + t.P("later") + "\"]}\n"
                 "    rollback: {exec: {argv: [rm, -f, \"" + t.P("later") + "\"]}}\n");
}

}  // namespace

TEST_CASE("a full state store stops the run before the next side effect, rollback included",
          "[e2e][state][faults]") {
  E2e t;
  SmallFs fs(t, 512);
  const std::string state = fs.dir() + "/state.db";
  // The fault fills the store's filesystem (dd fails once it is full).
  const std::string rb = Runbook(t, {"dd", "if=/dev/zero", "of=" + fs.dir() + "/fill", "bs=4k"});
  const std::map<std::string, std::string> env{{"RUNBOOK_STATE", state}};
  CliResult r = t.Run({"run", rb}, env);
  INFO(r.All());
  CHECK(r.code == 6);
  CHECK_THAT(r.All(), Catch::Contains("the state store could not be written"));
  CHECK(Exists(t.P("made")));        // not undone: an undo that cannot be journaled must not run
  CHECK_FALSE(Exists(t.P("later")));  // and nothing after the failed write acted

  // Room again: the run can be rolled back, journaled.
  std::filesystem::remove(fs.dir() + "/fill");
  std::string id = RunIdFrom(r.out);
  REQUIRE_FALSE(id.empty());
  r = t.Run({"rollback", id}, env);
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK_FALSE(Exists(t.P("made")));
}

TEST_CASE("a state store on a read-only filesystem: run and rollback stop before acting",
          "[e2e][state][faults]") {
  E2e t;
  SmallFs fs(t, 4096);
  const std::map<std::string, std::string> env{{"RUNBOOK_STATE", fs.dir() + "/state.db"}};
  // A run that stops after `made` (its second step fails), then the store
  // goes read-only (a filesystem remounted, a full quota) before the rollback.
  const std::string rb = Runbook(t, {"false"});
  std::string text = ReadFile(rb);
  text.replace(text.find("steps:"), 0, "on_failure: stop\n");
  text.replace(text.find("    continue_on_error: true\n"), 27, "");
  t.Write("store.yaml", text);
  CliResult r = t.Run({"run", rb}, env);
  INFO(r.All());
  REQUIRE(r.code == 1);
  const std::string id = RunIdFrom(r.out);
  REQUIRE(Exists(t.P("made")));
  fs.ReadOnly();
  r = t.Run({"rollback", id}, env);
  INFO(r.All());
  CHECK(r.code != 0);
  CHECK_THAT(r.All(), Catch::Contains("state store " + fs.dir() + "/state.db"));
  CHECK(Exists(t.P("made")));  // the undo did not run: it could not have been journaled
  // A new run on it: refused before any step.
  r = t.Run({"run", rb}, env);
  CHECK(r.code != 0);
  CHECK_FALSE(Exists(t.P("later")));

  fs.ReadWrite();
  r = t.Run({"rollback", id}, env);
  INFO(r.All());
  CHECK(r.code == 0);
  CHECK_FALSE(Exists(t.P("made")));
}

}  // namespace runbook::e2e
