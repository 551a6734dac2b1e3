#include "tests/e2e/e2e_util.h"

#include <cstdio>
#include <cstdlib>
#include <random>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "engine/core/sha256.h"

namespace runbook::e2e {

namespace fs = std::filesystem;

TempDir::TempDir() {
  const char* base = getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/runbook_e2e_XXXXXX";
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

E2e::E2e() : state_(tmp_.P("state/state.db")) {}
E2e::E2e(std::string state) : state_(std::move(state)) {}

std::string E2e::Write(const std::string& name, const std::string& text) const {
  std::string path = P(name);
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  f.close();
  if (!f) throw std::runtime_error("cannot write " + path);
  return path;
}

ProcessSpec E2e::Spec(const std::vector<std::string>& args,
                      const std::map<std::string, std::string>& env) const {
  ProcessSpec spec;
  spec.argv.push_back(RUNBOOK_BINARY);
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.env["RUNBOOK_STATE"] = state_;
  spec.env["NO_COLOR"] = "1";
  for (const auto& [k, v] : env) spec.env[k] = v;
  spec.cwd = dir();
  return spec;
}

CliResult E2e::Run(const std::vector<std::string>& args,
                   const std::map<std::string, std::string>& env,
                   std::chrono::milliseconds timeout) const {
  ProcessSpec spec = Spec(args, env);
  spec.deadline = std::chrono::steady_clock::now() + timeout;
  Result<ProcessResult> r = ProcessRunner::Real().Run(spec);
  CliResult out;
  if (!r.ok()) {
    out.err = r.status().message();
    return out;
  }
  out.code = r->signal ? -1 : r->exit_code;
  out.timed_out = r->timed_out;
  out.out = r->out;
  out.err = r->err;
  return out;
}

Value E2e::Runs() const {
  CliResult r = Run({"status", "--json", "--limit", "0"});
  if (r.code != 0) throw std::runtime_error("runbook status --json failed: " + r.All());
  return Value::parse(r.out);
}

Value E2e::RunStatus(const std::string& run_id) const {
  CliResult r = Run({"status", run_id, "--json"});
  if (r.code != 0) throw std::runtime_error("runbook status " + run_id + " failed: " + r.All());
  return Value::parse(r.out);
}

std::string E2e::LastRunId() const {
  Value runs = Runs();
  if (!runs.is_array() || runs.empty()) return "";
  return runs[0]["run"].get<std::string>();
}

std::map<std::string, Value> E2e::Steps(const std::string& run_id) const {
  std::map<std::string, Value> out;
  Value run = RunStatus(run_id);
  for (const auto& s : run["steps"]) out[s["step"].get<std::string>()] = s;
  return out;
}

// ---- Background -----------------------------------------------------------------

Background::Background(const ProcessSpec& spec) {
  Status s = child_.Start(spec);
  if (!s.ok()) throw std::runtime_error("cannot start runbook: " + s.message());
  fcntl(child_.out_fd(), F_SETFL, O_NONBLOCK);
  fcntl(child_.err_fd(), F_SETFL, O_NONBLOCK);
}

Background::~Background() { child_.Stop(); }

void Background::Drain(std::chrono::milliseconds wait) {
  struct pollfd fds[2] = {{child_.out_fd(), POLLIN, 0}, {child_.err_fd(), POLLIN, 0}};
  if (fds[0].fd < 0) return;
  if (poll(fds, 2, static_cast<int>(wait.count())) <= 0) return;
  char buf[4096];
  for (int i = 0; i < 2; ++i) {
    for (;;) {
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) break;
      (i == 0 ? out_ : err_).append(buf, static_cast<size_t>(n));
    }
  }
}

bool Background::Running() { return child_.Running(); }

bool Background::WaitExit(std::chrono::milliseconds timeout) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    Drain(std::chrono::milliseconds(20));
    if (!child_.Running()) {
      Drain();
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

void Background::KillHard() {
  pid_t pid = child_.pid();
  if (pid <= 0) return;
  // Stopped, the engine cannot start another child while we look.
  kill(pid, SIGSTOP);
  for (pid_t d : Descendants(pid)) {
    pid_t group = getpgid(d);
    if (group > 0 && group != getpgid(0)) kill(-group, SIGKILL);
    kill(d, SIGKILL);
  }
  kill(-pid, SIGKILL);
  kill(pid, SIGKILL);
  WaitExit(std::chrono::seconds(10));
}

std::string RunIdFrom(const std::string& output) {
  std::istringstream in(output);
  std::string word, id;
  if (!(in >> word >> id)) return "";
  if (word != "run" && word != "rehearsal" && word != "resume") return "";
  return id;
}

// ---- /proc ----------------------------------------------------------------------

static std::map<pid_t, pid_t> ParentMap() {
  std::map<pid_t, pid_t> parent;
  DIR* d = opendir("/proc");
  if (!d) return parent;
  while (struct dirent* e = readdir(d)) {
    char* end;
    long pid = strtol(e->d_name, &end, 10);
    if (*end || pid <= 0) continue;
    std::ifstream f(std::string("/proc/") + e->d_name + "/stat");
    std::string stat;
    std::getline(f, stat);
    // pid (comm) state ppid ...: comm may hold spaces, so parse after ')'.
    size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 1));
    std::string state;
    long ppid = 0;
    rest >> state >> ppid;
    parent[static_cast<pid_t>(pid)] = static_cast<pid_t>(ppid);
  }
  closedir(d);
  return parent;
}

std::vector<pid_t> Descendants(pid_t pid) {
  std::map<pid_t, pid_t> parent = ParentMap();
  std::vector<pid_t> out;
  std::vector<pid_t> todo{pid};
  while (!todo.empty()) {
    pid_t p = todo.back();
    todo.pop_back();
    for (const auto& [child, par] : parent) {
      if (par == p) {
        out.push_back(child);
        todo.push_back(child);
      }
    }
  }
  return out;
}

bool PidAlive(pid_t pid) {
  if (kill(pid, 0) != 0) return false;
  // A zombie is dead for our purposes.
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  std::getline(f, stat);
  size_t close = stat.rfind(')');
  return close == std::string::npos || stat.size() < close + 3 || stat[close + 2] != 'Z';
}

// ---- files ----------------------------------------------------------------------

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

int RunsOf(const E2e& t, const std::string& runbook) {
  int n = 0;
  for (const Value& r : t.Runs()) n += r["runbook"] == runbook && !r.value("fleet", false);
  return n;
}

std::string FleetIdOf(const std::string& out) {
  if (out.rfind("fleet ", 0) != 0) return "";
  return out.substr(6, out.find(' ', 6) - 6);
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

int CountLines(const std::string& path) {
  std::string text = ReadFile(path);
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

int64_t MtimeNs(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

std::string Snapshot(const std::string& dir, const std::vector<std::string>& skip) {
  std::vector<std::string> lines;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator();
       ++it) {
    std::string rel = fs::relative(it->path(), dir).string();
    if (std::find(skip.begin(), skip.end(), rel) != skip.end()) {
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    std::ostringstream line;
    line << rel;
    if (it->is_symlink()) {
      line << " link " << fs::read_symlink(it->path()).string();
    } else if (it->is_directory()) {
      line << " dir";
    } else {
      Result<std::string> sum = Sha256File(it->path().string());
      line << " file " << it->file_size() << " " << (sum.ok() ? *sum : "?") << " "
           << MtimeNs(it->path().string());
    }
    lines.push_back(line.str());
  }
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

// ---- the state store ------------------------------------------------------------------

namespace {

struct Db {
  sqlite3* db = nullptr;
  explicit Db(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
      sqlite3_close(db);
      db = nullptr;
    }
  }
  ~Db() { sqlite3_close(db); }
  // Every row of `sql` as "c1|c2|...\n".
  std::string Query(const std::string& sql) const {
    std::string out;
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
      return std::string("error: ") + sqlite3_errmsg(db) + "\n";
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
      for (int i = 0; i < sqlite3_column_count(st); ++i) {
        if (i) out += "|";
        const void* blob = sqlite3_column_blob(st, i);
        int n = sqlite3_column_bytes(st, i);
        if (blob) out.append(static_cast<const char*>(blob), static_cast<size_t>(n));
      }
      out += "\n";
    }
    sqlite3_finalize(st);
    return out;
  }
};

}  // namespace

std::string DumpStore(const std::string& path) {
  Db db(path);
  if (!db.db) return "";
  std::string tables = db.Query("SELECT name FROM sqlite_master WHERE type = 'table'");
  std::istringstream in(tables);
  std::string out, name;
  while (std::getline(in, name)) {
    std::string rows = db.Query("SELECT * FROM \"" + name + "\"");
    std::istringstream rin(rows);
    std::string row;
    while (std::getline(rin, row)) out += name + "|" + row + "\n";
  }
  // The schema too: nothing secret may hide in a default or a view.
  out += db.Query("SELECT sql FROM sqlite_master");
  return out;
}

std::string IntegrityCheck(const std::string& path) {
  Db db(path);
  if (!db.db) return "cannot open " + path;
  std::string r = db.Query("PRAGMA integrity_check");
  while (!r.empty() && r.back() == '\n') r.pop_back();
  return r;
}

uint64_t CrashSeed(const char* what) {
  const char* s = getenv("RUNBOOK_CRASH_SEED");
  uint64_t seed = s && *s ? std::strtoull(s, nullptr, 10) : std::random_device{}();
  fprintf(stderr, "%s seed: %llu (RUNBOOK_CRASH_SEED=%llu replays it)\n", what,
          static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  return seed;
}

}  // namespace runbook::e2e
