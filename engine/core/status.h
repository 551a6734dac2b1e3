// Status: the one way local failures travel (leveldb style). A Status is
// cheap to copy; ok() carries no allocation.
#pragma once

#include <string>
#include <utility>

namespace runbook {

// Exit codes of the command line. Every failure class maps
// to exactly one of these.
enum class ExitCode : int {
  kOk = 0,
  kRunFailed = 1,        // rolled back or stopped
  kInvalid = 2,          // usage, runbook, params, changed runbook
  kPaused = 3,           // waiting for an approval
  kLocked = 4,           // run lock held by another run
  kOutsideWindow = 5,    // maintenance window closed
  kRollbackFailed = 6,   // a human must act
  kInternal = 70,
};

// A position in a runbook file. line and col are 1-based; 0 means unknown.
struct Pos {
  std::string file;
  int line = 0;
  int col = 0;

  // "file:line:col" (or less, when parts are unknown).
  std::string ToString() const;
};

class Status {
 public:
  enum class Code {
    kOk,
    kInvalid,
    kFailed,
    kTimeout,
    kNotFound,
    kUnavailable,
    kPaused,
    kInternal,
    kHalt,
    kNotYet
  };

  Status() = default;
  static Status Ok() { return Status(); }
  static Status Invalid(std::string msg) { return Status(Code::kInvalid, std::move(msg)); }
  static Status Failed(std::string msg) { return Status(Code::kFailed, std::move(msg)); }
  static Status Timeout(std::string msg) { return Status(Code::kTimeout, std::move(msg)); }
  static Status NotFound(std::string msg) { return Status(Code::kNotFound, std::move(msg)); }
  // Transient: the caller may retry (connection refused, 5xx, conflict).
  static Status Unavailable(std::string msg) { return Status(Code::kUnavailable, std::move(msg)); }
  // The run must pause (waiting for an approval).
  static Status Paused(std::string msg) { return Status(Code::kPaused, std::move(msg)); }
  static Status Internal(std::string msg) { return Status(Code::kInternal, std::move(msg)); }
  // An undo that failed in a way that must stop the rollback (see Primitive::Undo).
  static Status Halt(std::string msg) { return Status(Code::kHalt, std::move(msg)); }
  // Rehearsals only: what the step needs does not exist yet, and an earlier
  // rehearsed step would have made it (see RehearsalPlan). The step ends
  // UNKNOWN, not failed: a real run would not stop here.
  static Status NotYet(std::string msg) { return Status(Code::kNotYet, std::move(msg)); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // Returns a copy whose message is "prefix: message".
  Status Prefixed(const std::string& prefix) const {
    if (ok()) return *this;
    return Status(code_, prefix + ": " + message_);
  }

 private:
  Status(Code code, std::string msg) : code_(code), message_(std::move(msg)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

// A value or the Status explaining why there is none.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT
  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() { return value_; }
  const T& value() const { return value_; }
  T& operator*() { return value_; }
  T* operator->() { return &value_; }

 private:
  Status status_;
  T value_{};
};

}  // namespace runbook
