// The primitive registry: the one interface through which every action a
// runbook can name (built-ins, pg.*, kube.*, ssh.*) reaches the engine.
//
// A binding implements Primitive once per action and ConnectionType once per
// connection kind (primitive.h), and registers them in a Registry. The core
// never names a binding; the validator, `plan`, the JSON Schema, the Lua API
// and the executor all read the same Registry.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/core/primitive.h"

namespace runbook {

class Registry {
 public:
  void Add(std::unique_ptr<Primitive> p);
  void AddConnectionType(std::unique_ptr<ConnectionType> c);
  Primitive* Find(const std::string& name) const;
  const ConnectionType* FindConnectionType(const std::string& name) const;
  std::vector<std::string> Names() const;  // sorted
  std::vector<std::string> ConnectionTypeNames() const;

 private:
  std::map<std::string, std::unique_ptr<Primitive>> primitives_;
  std::map<std::string, std::unique_ptr<ConnectionType>> connection_types_;
};

}  // namespace runbook
