// Manifests for kube.apply and kube.run_job: where they come from (a file, a
// directory of files, a map, a list of maps, or YAML text) and the objects
// they hold. kubectl reads them on stdin (--filename=-): no file holds them.
#pragma once

#include <string>
#include <vector>

#include "engine/core/status.h"
#include "engine/core/value.h"

namespace runbook::kube {

struct Manifest {
  std::string text;           // what kubectl gets (-f), YAML or JSON documents
  std::vector<Value> objects; // each object, as JSON ("kind: List" expanded)
};

// From the step's args: `file` (a file, or a directory whose *.yaml, *.yml
// and *.json files are read in name order) or `manifest` (a map, a list of
// maps, or YAML text). Text is passed to kubectl as written.
Result<Manifest> LoadManifest(const Value& args);

// Parses YAML text (one or more documents) into JSON values. Plain scalars
// are typed (null, bool, int, float); quoted ones stay strings.
Result<std::vector<Value>> ParseYamlDocuments(const std::string& text);

// "Deployment/web" (+ " in namespace 'x'" when the object names one).
std::string ObjectLabel(const Value& object);

}  // namespace runbook::kube
