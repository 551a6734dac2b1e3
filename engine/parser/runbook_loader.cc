// LoadRunbook / ParseRunbook: read the file, pick the loader by extension,
// validate, and share included runbooks through a LoadContext.
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/parser/validator.h"

namespace fs = std::filesystem;

namespace runbook {
namespace {

bool IsLuaFile(const std::string& path) { return fs::path(path).extension() == ".lua"; }

}  // namespace

std::shared_ptr<const Runbook> ParseRunbookWith(const std::string& path, const std::string& text,
                                                const Registry& registry, LoadContext* ctx,
                                                std::vector<Diagnostic>* diags) {
  std::string abs = AbsolutePath(path);
  std::optional<Node> tree =
      IsLuaFile(path) ? LoadLuaRunbookTree(path, text, diags) : LoadYamlTree(path, text, diags);
  std::shared_ptr<Runbook> rb;
  if (tree) {
    rb = std::make_shared<Runbook>();
    rb->path = path;
    rb->source = text;
    ctx->stack.push_back(abs);
    bool ok = Validator(path, registry, ctx, diags).Validate(*tree, rb.get());
    ctx->stack.pop_back();
    if (!ok) rb.reset();
  }
  ctx->cache[abs] = rb;
  return rb;
}

std::shared_ptr<const Runbook> LoadRunbookWith(const std::string& path, const Registry& registry,
                                               LoadContext* ctx, std::vector<Diagnostic>* diags) {
  auto cached = ctx->cache.find(AbsolutePath(path));
  if (cached != ctx->cache.end()) return cached->second;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    diags->push_back({Pos{path}, "", "cannot read runbook: it is a directory", ""});
    return nullptr;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    diags->push_back({Pos{path}, "", std::string("cannot read runbook: ") + std::strerror(errno), ""});
    return nullptr;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return ParseRunbookWith(path, text.str(), registry, ctx, diags);
}

std::shared_ptr<const Runbook> LoadRunbook(const std::string& path, const Registry& registry,
                                           std::vector<Diagnostic>* diags) {
  LoadContext ctx;
  return LoadRunbookWith(path, registry, &ctx, diags);
}

std::shared_ptr<const Runbook> ParseRunbook(const std::string& path, const std::string& text,
                                            const Registry& registry,
                                            std::vector<Diagnostic>* diags) {
  LoadContext ctx;
  return ParseRunbookWith(path, text, registry, &ctx, diags);
}

}  // namespace runbook
