#include "bindings/ssh/ssh_exec.h"

#include <poll.h>

#include <algorithm>
#include <chrono>
#include <optional>

#include "bindings/ssh/quote.h"
#include "engine/core/interrupt.h"

namespace runbook {
namespace {

constexpr size_t kChunk = 32 * 1024;
constexpr char kMarker[] = "runbook-pgid=";
constexpr auto kKillBudget = std::chrono::seconds(10);

// $1 is the process group. TERM, up to 2 s for it to go, then KILL.
// `kill -SIG -PGID` is the form every shell's kill takes (dash's refuses
// `--` and `-s SIG -PGID`).
constexpr char kKillScript[] =
    "g=$1; kill -0 -$g 2>/dev/null || exit 0; kill -TERM -$g 2>/dev/null; i=0; "
    "while [ $i -lt 20 ]; do kill -0 -$g 2>/dev/null || exit 0; "
    "sleep 0.1 2>/dev/null || sleep 1; i=$((i+1)); done; "
    "kill -KILL -$g 2>/dev/null; exit 0";

class ChannelGuard {
 public:
  explicit ChannelGuard(ssh_channel c) : c_(c) {}
  ~ChannelGuard() {
    if (!c_) return;
    if (ssh_channel_is_open(c_)) ssh_channel_close(c_);
    ssh_channel_free(c_);
  }
  ChannelGuard(const ChannelGuard&) = delete;
  ChannelGuard& operator=(const ChannelGuard&) = delete;

 private:
  ssh_channel c_;
};

// Collects one stream, up to a bound; for stderr, takes the pgid marker off
// the front first.
struct Sink {
  std::string* text;
  bool* truncated;
  size_t max;
  bool marker = false;  // still looking for the marker line
  std::string head;
  int pgid = 0;

  void Add(const char* data, size_t n) {
    if (marker) {
      head.append(data, n);
      size_t nl = head.find('\n');
      if (nl == std::string::npos && head.size() < 64) return;
      marker = false;
      std::string rest = head;
      if (nl != std::string::npos && head.rfind(kMarker, 0) == 0) {
        pgid = atoi(head.c_str() + sizeof(kMarker) - 1);
        rest = head.substr(nl + 1);
      }
      head.clear();
      Keep(rest.data(), rest.size());
      return;
    }
    Keep(data, n);
  }
  void Keep(const char* data, size_t n) {
    size_t room = text->size() < max ? max - text->size() : 0;
    text->append(data, std::min(room, n));
    if (n > room) *truncated = true;
  }
  void Finish() {
    if (marker && !head.empty()) Keep(head.data(), head.size());
    marker = false;
  }
};

Status Lost(SshClient& c, const std::string& when) {
  return Status::Unavailable(c.Describe() + ": the ssh connection was lost " + when + " (" +
                             c.LastError() + "); the command may have finished, partly run, or "
                             "still be running on the host");
}

struct Run {
  SshClient& c;
  ssh_channel ch;
  const RemoteExecRequest& req;
  RemoteExecResult r;
};

// The loop: stdin out in window-sized pieces, both streams in, until EOF or
// the deadline. Returns false on a timeout.
Result<bool> Pump(Run& run, Sink& out, Sink& err) {
  const std::string& in = run.req.stdin_data ? *run.req.stdin_data : std::string();
  size_t in_pos = 0;
  bool eof_sent = false;
  std::optional<SteadyTime> stop_by;  // the run stopped acting: the marker's last chance
  char buf[kChunk];
  while (true) {
    bool progress = false;
    if (in_pos < in.size()) {
      uint32_t window = ssh_channel_window_size(run.ch);
      if (window > 0) {
        size_t n = std::min<size_t>({window, in.size() - in_pos, kChunk});
        int w = ssh_channel_write(run.ch, in.data() + in_pos, static_cast<uint32_t>(n));
        if (w == SSH_ERROR) return Lost(run.c, "while sending stdin");
        in_pos += static_cast<size_t>(w);
        progress = progress || w > 0;
      }
    }
    if (in_pos >= in.size() && !eof_sent) {
      ssh_channel_send_eof(run.ch);
      eof_sent = true;
    }
    for (int is_stderr = 0; is_stderr < 2; ++is_stderr) {
      int n = ssh_channel_read_nonblocking(run.ch, buf, sizeof buf, is_stderr);
      if (n > 0) {
        (is_stderr ? err : out).Add(buf, static_cast<size_t>(n));
        progress = true;
      } else if (n < 0 && n != SSH_EOF) {
        return Lost(run.c, "while the command ran");
      }
    }
    if (ssh_channel_is_eof(run.ch) || ssh_channel_is_closed(run.ch)) return true;
    if (!run.c.connected()) return Lost(run.c, "while the command ran");
    SteadyTime now = std::chrono::steady_clock::now();
    // The group of a step's command is killed then, once it is known (the
    // marker comes first); runbook's own (the kill itself) run to their end.
    if (now >= run.req.deadline) return false;
    if (run.req.in_process_group && ActingStopped()) {
      if (!stop_by) stop_by = now + std::chrono::seconds(2);
      if (!err.marker || now >= *stop_by) return false;
    }
    if (progress) continue;
    auto wait = std::chrono::milliseconds(100);
    if (run.req.deadline != SteadyTime::max()) {
      wait = std::min(wait, std::chrono::ceil<std::chrono::milliseconds>(run.req.deadline - now));
    }
    pollfd pfd{ssh_get_fd(run.c.session()), POLLIN, 0};
    poll(&pfd, 1, static_cast<int>(wait.count()));
    run.c.Keepalive();
  }
}

// Ends the remote process group after a timeout; says what happened.
std::string KillGroup(SshClient& c, int pgid, bool sudo) {
  if (pgid <= 0) {
    return "the remote command did not report its process group; closing the channel is all "
           "that could be done, so it may still be running";
  }
  RemoteCommand kill{{"sh", "-c", kKillScript, "runbook-kill", std::to_string(pgid)}, {}, sudo};
  Result<std::string> line = BuildCommandLine(kill);
  ssh_channel ch = c.connected() ? ssh_channel_new(c.session()) : nullptr;
  if (!line.ok() || !ch || ssh_channel_open_session(ch) != SSH_OK) {
    if (ch) ssh_channel_free(ch);
    return "could not open a channel to kill process group " + std::to_string(pgid) + " (" +
           c.LastError() + "); it may still be running";
  }
  RemoteExecRequest req;
  req.command_line = *line;
  req.deadline = std::chrono::steady_clock::now() + kKillBudget;
  req.max_output = 4096;
  req.in_process_group = false;
  Result<RemoteExecResult> r = RunRemote(c, ch, req);
  std::string group = "process group " + std::to_string(pgid);
  if (!r.ok()) return "killing " + group + " failed: " + r.status().message();
  if (r->timed_out || r->exit_code != 0) {
    return "killing " + group + " failed (exit " + std::to_string(r->exit_code) + "): " + r->err;
  }
  return "the remote " + group + " was sent TERM (then KILL after 2 s if still there)";
}

}  // namespace

std::string WrapInProcessGroup(const std::string& line) {
  return std::string("echo ") + kMarker + "$$ >&2; exec " + line;
}

Result<RemoteExecResult> RunRemote(SshClient& c, ssh_channel ch, const RemoteExecRequest& req) {
  ChannelGuard guard(ch);
  const bool wrap = req.in_process_group;
  Run run{c, ch, req, {}};
  Sink out{&run.r.out, &run.r.out_truncated, req.max_output};
  Sink err{&run.r.err, &run.r.err_truncated, req.max_output};
  err.marker = wrap;
  std::string line = wrap ? WrapInProcessGroup(req.command_line) : req.command_line;
  if (ssh_channel_request_exec(ch, line.c_str()) != SSH_OK) {
    if (!c.connected()) return Lost(c, "before the command started");
    return Status::Failed(c.Describe() + ": the server refused to run the command: " +
                          c.LastError());
  }
  Result<bool> finished = Pump(run, out, err);
  if (!finished.ok()) return finished.status();
  err.Finish();
  run.r.pgid = err.pgid;
  if (!*finished) {
    run.r.timed_out = true;
    run.r.kill_note = KillGroup(c, run.r.pgid, req.sudo);
    return run.r;
  }
  run.r.exit_code = ssh_channel_get_exit_status(ch);
  if (run.r.exit_code < 0 && !c.connected()) return Lost(c, "before the exit status arrived");
  return run.r;
}

}  // namespace runbook
