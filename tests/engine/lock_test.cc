#include <algorithm>
#include "engine/state/lock.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "tests/engine/state_test_util.h"

namespace runbook {
namespace {

using testing::StoreDir;

// A child process that takes the lock, says so on a pipe, then waits to be
// killed.
pid_t SpawnHolder(const std::string& state_path, const std::string& key) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    auto lock = RunLock::Acquire(state_path, key, "child-run");
    char c = lock.ok() ? 'y' : 'n';
    if (write(fds[1], &c, 1) != 1) _exit(1);
    for (;;) pause();
  }
  close(fds[1]);
  char c = 0;
  ssize_t n = read(fds[0], &c, 1);
  close(fds[0]);
  if (n != 1 || c != 'y') {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    FAIL("the child could not take the lock");
  }
  return pid;
}

void Kill(pid_t pid) {
  kill(pid, SIGKILL);
  int wstatus = 0;
  waitpid(pid, &wstatus, 0);
}

}  // namespace

TEST_CASE("a held lock refuses a second holder, naming the run and pid", "[lock]") {
  StoreDir dir;
  std::string state = dir.path + "/state.db";
  auto first = RunLock::Acquire(state, "db:main", "run-1");
  REQUIRE(first.ok());
  // flock belongs to the open file description: a second open in the same
  // process conflicts like another process would.
  auto second = RunLock::Acquire(state, "db:main", "run-2");
  REQUIRE(!second.ok());
  CHECK(second.status().code() == Status::Code::kUnavailable);
  CHECK(second.status().message() ==
        "lock 'db:main' is held by run run-1 (pid " + std::to_string(getpid()) + ")");
}

// The lock files of a directory, each cut at its hash: "db_main- x-".
std::string LockFiles(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    std::string n = e.path().filename().string();
    size_t dash = n.rfind('-');
    names.push_back(dash == std::string::npos ? n : n.substr(0, dash + 1));
  }
  std::sort(names.begin(), names.end());
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : " ") + n;
  return out;
}

TEST_CASE("a lock is released by its destructor", "[lock]") {
  StoreDir dir;
  std::string state = dir.path + "/state.db";
  {
    auto first = RunLock::Acquire(state, "db:main", "run-1");
    REQUIRE(first.ok());
  }
  auto second = RunLock::Acquire(state, "db:main", "run-2");
  REQUIRE(second.ok());
  CHECK(LockFiles(dir.path + "/locks") == "db_main-");  // never unlinked
}

TEST_CASE("a lock whose holder was SIGKILLed can be taken", "[lock]") {
  StoreDir dir;
  std::string state = dir.path + "/state.db";
  pid_t holder = SpawnHolder(state, "db:main");
  auto while_alive = RunLock::Acquire(state, "db:main", "run-2");
  CHECK(!while_alive.ok());
  CHECK(while_alive.status().message() ==
        "lock 'db:main' is held by run child-run (pid " + std::to_string(holder) + ")");
  Kill(holder);
  auto after = RunLock::Acquire(state, "db:main", "run-2");
  INFO(after.status().message());
  CHECK(after.ok());
}

TEST_CASE("different keys do not conflict and stay inside the lock directory", "[lock]") {
  StoreDir dir;
  std::string state = dir.path + "/state/state.db";
  auto a = RunLock::Acquire(state, "db:main", "run-1");
  auto b = RunLock::Acquire(state, "../../etc/passwd", "run-2");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(LockFiles(dir.path + "/state/locks") == ".._.._etc_passwd- db_main-");
  CHECK(RunLock::Acquire(state, "", "run-3").status().code() == Status::Code::kInvalid);
  // Keys that only look alike after the file-name mapping are different locks;
  // a key too long for a file name has a lock too (not "held").
  auto c = RunLock::Acquire(state, "db_main", "run-4");
  INFO(c.status().message());
  CHECK(c.ok());
  auto d = RunLock::Acquire(state, std::string(5000, 'k'), "run-5");
  INFO(d.status().message());
  CHECK(d.ok());
  CHECK(RunLock::IsHeld(state, std::string(5000, 'k')));
  CHECK_FALSE(RunLock::IsHeld(state, "nobody-took-this"));
}

TEST_CASE("the lock directory is 0700 and the lock file 0600", "[lock]") {
  StoreDir dir;
  std::string state = dir.path + "/s/state.db";
  mode_t caller_umask = umask(0);
  auto lock = RunLock::Acquire(state, "k", "run-1");
  umask(caller_umask);
  REQUIRE(lock.ok());
  struct stat st;
  REQUIRE(stat((dir.path + "/s/locks").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  REQUIRE(stat((dir.path + "/s/locks/k.lock").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
}

}  // namespace runbook
