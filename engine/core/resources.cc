#include "engine/core/resources.h"

namespace runbook {

Resources::~Resources() { Clear(); }

Result<Resource*> Resources::GetOrCreate(
    const std::string& key, const std::function<Result<std::unique_ptr<Resource>>()>& make) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [k, r] : items_) {
    if (k == key) return r.get();
  }
  Result<std::unique_ptr<Resource>> made = make();
  if (!made.ok()) return made.status();
  items_.emplace_back(key, std::move(*made));
  return items_.back().second.get();
}

void Resources::Drop(const std::string& key) {
  std::unique_ptr<Resource> victim;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = items_.begin(); it != items_.end(); ++it) {
      if (it->first == key) {
        victim = std::move(it->second);
        items_.erase(it);
        break;
      }
    }
  }
}

void Resources::ForEach(const std::function<void(const std::string& key, Resource* r)>& fn) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [key, r] : items_) fn(key, r.get());
}

void Resources::Clear() {
  std::vector<std::pair<std::string, std::unique_ptr<Resource>>> items;
  {
    std::lock_guard<std::mutex> lock(mu_);
    items.swap(items_);
  }
  while (!items.empty()) items.pop_back();  // newest first
}

}  // namespace runbook
