// Live things a binding keeps for the length of a run, by key.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/status.h"

namespace runbook {

// Live things a binding keeps for the length of a run (a libpq connection, a
// port-forward). Destroyed, in reverse order of creation, when the run ends.
class Resource {
 public:
  virtual ~Resource() = default;
};

class Resources {
 public:
  ~Resources();
  // Returns the resource under `key`, creating it with `make` if absent.
  // Thread-safe; `make` runs under the lock, so keep it short or accept that
  // concurrent users of one key wait.
  Result<Resource*> GetOrCreate(const std::string& key,
                                const std::function<Result<std::unique_ptr<Resource>>()>& make);
  void Drop(const std::string& key);
  // Calls fn for each resource, oldest first, under the lock (keep it short).
  void ForEach(const std::function<void(const std::string& key, Resource* r)>& fn);
  void Clear();

 private:
  std::mutex mu_;
  std::vector<std::pair<std::string, std::unique_ptr<Resource>>> items_;
};

}  // namespace runbook
