// window: {timezone, days, start, end}
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

#include "engine/parser/validator.h"
#include "engine/core/text.h"

namespace runbook {
namespace {

constexpr const char* kZoneInfo = "/usr/share/zoneinfo";

const std::vector<std::string>& DayNames() {
  static const std::vector<std::string> kDays = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
  return kDays;
}

// True if `tz` names a zone of the system's tz database (a regular file,
// possibly through a symlink, below /usr/share/zoneinfo).
bool TimezoneExists(const std::string& tz) {
  // NAME(/NAME)*, NAME of [A-Za-z0-9_+-]: no "..", no leading '/'.
  if (tz.empty() || tz.size() > 200 || tz.front() == '/' || tz.back() == '/' ||
      tz.find("//") != std::string::npos) {
    return false;
  }
  for (char c : tz) {
    if (!IsAsciiAlnum(c) && c != '_' && c != '+' && c != '-' && c != '/') return false;
  }
  struct stat st;
  std::string file = std::string(kZoneInfo) + "/" + tz;
  return stat(file.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// Zones next to where `tz` would be, for a suggestion.
std::vector<std::string> NeighbourZones(const std::string& tz) {
  std::vector<std::string> out;
  size_t slash = tz.rfind('/');
  std::string dir = slash == std::string::npos ? "" : tz.substr(0, slash);
  std::error_code ec;
  std::filesystem::path base = std::filesystem::path(kZoneInfo) / dir;
  for (const auto& e : std::filesystem::directory_iterator(base, ec)) {
    out.push_back((dir.empty() ? "" : dir + "/") + e.path().filename().string());
  }
  return out;
}

}  // namespace

void Validator::ParseWindow(const Node& n) {
  if (!n.IsMap()) {
    Error(n.pos, "window must be a map {timezone, days, start, end}, got " + DescribeNode(n));
    return;
  }
  static const std::vector<std::string> kKeys = {"timezone", "days", "start", "end"};
  Window w;
  w.pos = n.pos;
  for (const auto& [k, v] : n.entries) {
    if (k.scalar == "timezone") {
      if (StringKey(v, "'timezone'", &w.timezone) && !TimezoneExists(w.timezone)) {
        Error(v.pos, "unknown timezone '" + w.timezone + "'",
              Suggest(w.timezone, NeighbourZones(w.timezone)));
      }
    } else if (k.scalar == "days") {
      WindowDays(v, &w);
    } else if (k.scalar == "start") {
      WindowTime(v, "start", &w.start_minute);
    } else if (k.scalar == "end") {
      WindowTime(v, "end", &w.end_minute);
    } else {
      Error(k.pos, "unknown key '" + k.scalar + "' in window", Suggest(k.scalar, kKeys));
    }
  }
  for (const char* required : {"start", "end"}) {
    if (!n.Find(required)) Error(n.pos, std::string("window needs '") + required + "' (HH:MM)");
  }
  rb_->window = w;
}

void Validator::WindowDays(const Node& n, Window* w) {
  if (!n.IsSeq()) {
    Error(n.pos, "window days must be a list such as [sat, sun], got " + DescribeNode(n));
    return;
  }
  const auto& names = DayNames();
  for (const Node& item : n.items) {
    auto it = std::find(names.begin(), names.end(), item.IsScalar() ? item.scalar : "");
    if (!item.IsScalar() || it == names.end()) {
      std::string got = item.IsScalar() ? "'" + item.scalar + "'" : DescribeNode(item);
      Error(item.pos, "unknown day " + got + " (use sun, mon, tue, wed, thu, fri, sat)",
            item.IsScalar() ? Suggest(item.scalar, names) : "");
      continue;
    }
    int day = static_cast<int>(it - names.begin());
    if (std::find(w->days.begin(), w->days.end(), day) == w->days.end()) w->days.push_back(day);
  }
  std::sort(w->days.begin(), w->days.end());
}

bool Validator::WindowTime(const Node& n, const std::string& what, int* minute) {
  // H:MM or HH:MM, 00:00 to 23:59.
  const std::string t = n.IsScalar() ? n.scalar : "";
  const size_t colon = t.find(':');
  const bool shape = (colon == 1 || colon == 2) && t.size() == colon + 3 &&
                     IsAsciiDigit(t[0]) && IsAsciiDigit(t[colon - 1]) &&
                     IsAsciiDigit(t[colon + 1]) && IsAsciiDigit(t[colon + 2]);
  const int hour = shape ? std::stoi(t.substr(0, colon)) : -1;
  const int min = shape ? std::stoi(t.substr(colon + 1)) : -1;
  if (!n.IsScalar() || !shape || hour > 23 || min > 59) {
    std::string got = n.IsScalar() ? "'" + n.scalar + "'" : DescribeNode(n);
    Error(n.pos, "window " + what + " must be a time HH:MM (00:00 to 23:59), got " + got);
    return false;
  }
  *minute = hour * 60 + min;
  return true;
}

}  // namespace runbook
