#include "engine/core/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "engine/core/interrupt.h"

extern char** environ;

namespace runbook {
namespace {

// Owns a file descriptor (ccache's Fd).
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { Close(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int Release() { int f = fd_; fd_ = -1; return f; }
  void Close() { if (fd_ >= 0) ::close(fd_); fd_ = -1; }
  void Reset(int fd) { Close(); fd_ = fd; }

 private:
  int fd_;
};

struct Pipe {
  Fd read, write;
  bool Open() {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return false;
    read.Reset(fds[0]);
    write.Reset(fds[1]);
    return true;
  }
};

std::vector<std::string> BuildEnv(const ProcessSpec& spec) {
  std::map<std::string, std::string> merged;
  if (spec.inherit_env) {
    for (char** e = environ; *e; ++e) {
      const char* eq = strchr(*e, '=');
      if (eq) merged[std::string(*e, eq - *e)] = eq + 1;
    }
  }
  for (const auto& [k, v] : spec.env) merged[k] = v;
  std::vector<std::string> out;
  for (const auto& [k, v] : merged) out.push_back(k + "=" + v);
  return out;
}

// Spawns with stdin from `in_fd` (or /dev/null), stdout/stderr to the pipes.
Result<pid_t> Spawn(const ProcessSpec& spec, int in_fd, int out_fd, int err_fd) {
  if (spec.argv.empty()) return Status::Invalid("empty argv");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (in_fd >= 0) {
    posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
  } else {
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  }
  posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
  posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
  if (!spec.cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa, spec.cwd.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigset_t deflt;
  sigemptyset(&deflt);
  sigaddset(&deflt, SIGPIPE);
  sigaddset(&deflt, SIGINT);
  sigaddset(&deflt, SIGTERM);
  posix_spawnattr_setsigdefault(&attr, &deflt);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> argv;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env = BuildEnv(spec);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  // posix_spawnp searches PATH of the *caller*; honour a PATH from spec.env.
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &fa, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return Status::Failed("cannot start '" + spec.argv[0] + "': " + strerror(rc));
  }
  return pid;
}

void KillGroup(pid_t pid, int sig) {
  if (pid > 0) ::kill(-pid, sig);
}

class RealProcessRunner : public ProcessRunner {
 public:
  Result<ProcessResult> Run(const ProcessSpec& spec) override;
};

// A child that exits without reading all its stdin (a psql that failed to
// connect, fed a dump) must not kill this process with SIGPIPE at the next
// write: ignored, the write fails with EPIPE instead. Once, process-wide,
// unless a handler is installed; children get the default back (Spawn).
void IgnoreSigpipe() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction old {};
    if (sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) {
      signal(SIGPIPE, SIG_IGN);
    }
  });
}

Result<ProcessResult> RealProcessRunner::Run(const ProcessSpec& spec) {
  if (spec.stdin_data) IgnoreSigpipe();
  Pipe in, out, err;
  if (!out.Open() || !err.Open() || (spec.stdin_data && !in.Open())) {
    return Status::Failed(std::string("pipe: ") + strerror(errno));
  }
  Result<pid_t> spawned = Spawn(spec, spec.stdin_data ? in.read.get() : -1, out.write.get(),
                                err.write.get());
  if (!spawned.ok()) return spawned.status();
  pid_t pid = *spawned;
  in.read.Close();
  out.write.Close();
  err.write.Close();

  ProcessResult r;
  const std::string stdin_data = spec.stdin_data.value_or("");
  size_t stdin_off = 0;
  if (spec.stdin_data) {
    fcntl(in.write.get(), F_SETFL, O_NONBLOCK);
    if (stdin_data.empty()) in.write.Close();
  }
  bool term_sent = false;
  // A step's child (kStepTokenVar) ends when the run stops acting
  // (interrupt.h); the engine's own (a lock's renewal) do not.
  const bool for_step = spec.env.count(kStepTokenVar) > 0;
  SteadyTime kill_at{};
  char buf[65536];
  while (out.read.get() >= 0 || err.read.get() >= 0) {
    struct pollfd fds[3];
    int n = 0;
    int io = -1, ie = -1, iw = -1;
    if (out.read.get() >= 0) { io = n; fds[n++] = {out.read.get(), POLLIN, 0}; }
    if (err.read.get() >= 0) { ie = n; fds[n++] = {err.read.get(), POLLIN, 0}; }
    if (in.write.get() >= 0) { iw = n; fds[n++] = {in.write.get(), POLLOUT, 0}; }
    int wait_ms = 200;
    auto now = std::chrono::steady_clock::now();
    if (!term_sent && spec.deadline && now >= *spec.deadline) r.timed_out = true;
    if (!term_sent && (r.timed_out || (for_step && ActingStopped()))) {
      KillGroup(pid, SIGTERM);
      term_sent = true;
      kill_at = now + std::chrono::seconds(2);
    }
    if (term_sent && now >= kill_at) KillGroup(pid, SIGKILL);
    int rc = poll(fds, n, wait_ms);
    if (rc < 0 && errno != EINTR) break;
    auto drain = [&](int idx, Fd& fd, std::string& dst) {
      if (idx < 0 || !(fds[idx].revents & (POLLIN | POLLHUP | POLLERR))) return;
      ssize_t got = ::read(fd.get(), buf, sizeof buf);
      if (got <= 0) {
        if (got < 0 && (errno == EINTR || errno == EAGAIN)) return;
        fd.Close();
        return;
      }
      size_t room = spec.max_output > dst.size() ? spec.max_output - dst.size() : 0;
      if (static_cast<size_t>(got) > room) r.truncated = true;
      dst.append(buf, std::min<size_t>(got, room));
    };
    drain(io, out.read, r.out);
    drain(ie, err.read, r.err);
    if (iw >= 0 && (fds[iw].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t put = ::write(in.write.get(), stdin_data.data() + stdin_off,
                            stdin_data.size() - stdin_off);
      if (put > 0) stdin_off += put;
      if (put < 0 && errno != EAGAIN && errno != EINTR) in.write.Close();
      if (stdin_off >= stdin_data.size()) in.write.Close();
    }
  }
  in.write.Close();
  // Output closed; the leader may still run (it closed its fds) until killed
  // (at its deadline, or when the run stops acting: interrupt.h). Look again
  // soon (a child that closed its output is mostly exiting already), then
  // less often.
  int status = 0;
  useconds_t nap = 100;
  for (;;) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) break;
    if (w < 0) continue;
    auto now = std::chrono::steady_clock::now();
    if (!term_sent && spec.deadline && now >= *spec.deadline) r.timed_out = true;
    if (!term_sent && (r.timed_out || (for_step && ActingStopped()))) {
      KillGroup(pid, SIGTERM);
      term_sent = true;
      kill_at = now + std::chrono::seconds(2);
    }
    if (term_sent && now >= kill_at) KillGroup(pid, SIGKILL);
    usleep(nap);
    nap = std::min<useconds_t>(nap * 2, 5000);
  }
  // Whatever the leader left behind in its group goes with it.
  if (term_sent) KillGroup(pid, SIGKILL);
  if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.signal = WTERMSIG(status);
  }
  return r;
}

}  // namespace

std::vector<std::string> ProcessesWithEnv(const std::string& var, const std::string& value) {
  const std::string want = var + "=" + value;
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string pid = entry.path().filename().string();
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream env(entry.path() / "environ", std::ios::binary);
    std::string item;
    bool found = false;
    while (!found && std::getline(env, item, '\0')) found = item == want;
    if (!found) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    std::getline(stat, line);
    size_t close = line.rfind(')');
    if (close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z') continue;
    std::ifstream cmd(entry.path() / "cmdline", std::ios::binary);
    std::string argv, word;
    while (std::getline(cmd, word, '\0')) argv += (argv.empty() ? "" : " ") + word;
    out.push_back(pid + " " + argv.substr(0, 200));
  }
  return out;
}

ProcessRunner& ProcessRunner::Real() {
  static RealProcessRunner runner;
  return runner;
}

ChildProcess::~ChildProcess() { Stop(); }

Status ChildProcess::Start(const ProcessSpec& spec) {
  Pipe out, err;
  if (!out.Open() || !err.Open()) return Status::Failed(std::string("pipe: ") + strerror(errno));
  Result<pid_t> spawned = Spawn(spec, -1, out.write.get(), err.write.get());
  if (!spawned.ok()) return spawned.status();
  pid_ = *spawned;
  out_fd_ = out.read.Release();
  err_fd_ = err.read.Release();
  return Status::Ok();
}

bool ChildProcess::Running() {
  if (pid_ <= 0) return false;
  int status;
  pid_t w = waitpid(pid_, &status, WNOHANG);
  if (w == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

void ChildProcess::Stop() {
  if (pid_ > 0) {
    KillGroup(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) { pid_ = -1; break; }
      usleep(10000);
    }
    if (pid_ > 0) {
      KillGroup(pid_, SIGKILL);
      int status;
      waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }
  if (out_fd_ >= 0) ::close(out_fd_);
  if (err_fd_ >= 0) ::close(err_fd_);
  out_fd_ = err_fd_ = -1;
}

std::string HostName() {
  char name[256] = {0};
  if (gethostname(name, sizeof(name) - 1) != 0) return "";
  return name;
}

}  // namespace runbook
