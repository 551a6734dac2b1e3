#include "engine/core/registry.h"

#include <algorithm>

namespace runbook {

void Registry::Add(std::unique_ptr<Primitive> p) {
  std::string n = p->name();
  primitives_[n] = std::move(p);
}

void Registry::AddConnectionType(std::unique_ptr<ConnectionType> c) {
  std::string n = c->name();
  connection_types_[n] = std::move(c);
}

Primitive* Registry::Find(const std::string& name) const {
  auto it = primitives_.find(name);
  return it == primitives_.end() ? nullptr : it->second.get();
}

const ConnectionType* Registry::FindConnectionType(const std::string& name) const {
  auto it = connection_types_.find(name);
  return it == connection_types_.end() ? nullptr : it->second.get();
}

std::vector<std::string> Registry::Names() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : primitives_) out.push_back(k);
  return out;
}

std::vector<std::string> Registry::ConnectionTypeNames() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : connection_types_) out.push_back(k);
  return out;
}

}  // namespace runbook
