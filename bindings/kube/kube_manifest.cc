#include "bindings/kube/kube_manifest.h"

#include "engine/core/text.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bindings/kube/kube_objects.h"

namespace runbook::kube {
namespace {

namespace fs = std::filesystem;
constexpr int kMaxDepth = 64;

Value PlainScalar(const std::string& s) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (IsDecimalInt(s)) {
    errno = 0;
    long long v = std::strtoll(s.c_str(), nullptr, 10);
    if (errno != ERANGE) return v;
  }
  if (IsFloat(s)) return std::strtod(s.c_str(), nullptr);
  return s;
}

Result<Value> Convert(const YAML::Node& y, int depth) {
  if (depth > kMaxDepth) return Status::Invalid("manifest nests too deeply");
  switch (y.Type()) {
    case YAML::NodeType::Scalar:
      return y.Tag() == "?" ? PlainScalar(y.Scalar()) : Value(y.Scalar());
    case YAML::NodeType::Sequence: {
      Value out = Value::array();
      for (const auto& item : y) {
        Result<Value> v = Convert(item, depth + 1);
        if (!v.ok()) return v;
        out.push_back(std::move(*v));
      }
      return out;
    }
    case YAML::NodeType::Map: {
      Value out = Value::object();
      for (const auto& kv : y) {
        Result<Value> v = Convert(kv.second, depth + 1);
        if (!v.ok()) return v;
        out[kv.first.as<std::string>()] = std::move(*v);
      }
      return out;
    }
    default:
      return Value(nullptr);
  }
}

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Invalid("cannot read manifest file '" + path + "': " + strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Result<std::string> ReadFileOrDir(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return ReadFile(path);
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(path, ec)) {
    std::string ext = entry.path().extension().string();
    if (entry.is_regular_file() && (ext == ".yaml" || ext == ".yml" || ext == ".json")) {
      files.push_back(entry.path().string());
    }
  }
  if (ec) return Status::Invalid("cannot list manifest directory '" + path + "': " + ec.message());
  if (files.empty()) return Status::Invalid("no *.yaml, *.yml or *.json file in '" + path + "'");
  std::sort(files.begin(), files.end());
  std::string text;
  for (const auto& f : files) {
    Result<std::string> one = ReadFile(f);
    if (!one.ok()) return one.status();
    text += (text.empty() ? "" : "\n---\n") + *one;
  }
  return text;
}

void AddObjects(const Value& doc, std::vector<Value>* out) {
  if (!doc.is_object()) return;
  if (Str(doc, "kind") == "List" && doc.contains("items") && doc["items"].is_array()) {
    for (const auto& item : doc["items"]) AddObjects(item, out);
    return;
  }
  out->push_back(doc);
}

}  // namespace

Result<std::vector<Value>> ParseYamlDocuments(const std::string& text) {
  std::vector<Value> out;
  try {
    for (const auto& doc : YAML::LoadAll(text)) {
      Result<Value> v = Convert(doc, 0);
      if (!v.ok()) return v.status();
      if (!v->is_null()) out.push_back(std::move(*v));
    }
  } catch (const YAML::Exception& e) {
    return Status::Invalid("manifest is not valid YAML: " + std::string(e.what()));
  }
  return out;
}

Result<Manifest> LoadManifest(const Value& args) {
  Manifest m;
  std::vector<Value> docs;
  if (args.contains("file") && args["file"].is_string()) {
    Result<std::string> text = ReadFileOrDir(args["file"].get<std::string>());
    if (!text.ok()) return text.status();
    m.text = *text;
  } else if (args.contains("manifest") && args["manifest"].is_string()) {
    m.text = args["manifest"].get<std::string>();
  } else if (args.contains("manifest") &&
             (args["manifest"].is_object() || args["manifest"].is_array())) {
    const Value& given = args["manifest"];
    docs = given.is_array() ? std::vector<Value>(given.begin(), given.end())
                            : std::vector<Value>{given};
    for (const auto& d : docs) {
      if (!d.is_object()) return Status::Invalid("manifest: every item must be a map (an object)");
      m.text += "---\n" + d.dump() + "\n";  // JSON documents in a YAML stream
    }
  } else {
    return Status::Invalid("needs a manifest: 'file' (a path) or 'manifest' (a map, a list of "
                           "maps, or YAML text)");
  }
  // kubectl reads a stream that starts with '{' as one JSON document; a
  // leading document marker makes it read YAML (JSON documents included).
  size_t first = m.text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && m.text[first] == '{' && docs.empty() &&
      m.text.find("\n---", first) != std::string::npos) {
    m.text = "---\n" + m.text;
  }
  if (docs.empty()) {
    Result<std::vector<Value>> parsed = ParseYamlDocuments(m.text);
    if (!parsed.ok()) return parsed.status();
    docs = std::move(*parsed);
  }
  for (const auto& d : docs) AddObjects(d, &m.objects);
  if (m.objects.empty()) return Status::Invalid("the manifest holds no object");
  for (const auto& o : m.objects) {
    if (Str(o, "kind").empty() || !o.contains("metadata") ||
        !o["metadata"].is_object() || Str(o["metadata"], "name").empty()) {
      return Status::Invalid("every object of the manifest needs kind and metadata.name "
                             "(generateName cannot be tracked for undo): " +
                             o.dump().substr(0, 120));
    }
  }
  return m;
}

std::string ObjectLabel(const Value& object) {
  const Value meta = object.is_object() ? object.value("metadata", Value()) : Value();
  std::string out = Str(object, "kind") + "/" + Str(meta, "name");
  std::string ns = Str(meta, "namespace");
  if (!ns.empty()) out += " in namespace '" + ns + "'";
  return out;
}

}  // namespace runbook::kube
