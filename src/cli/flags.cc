#include "cli/flags.h"

namespace xrayd::cli {

Result<bool> ParseGoBool(const std::string& s) {
  if (s == "1" || s == "t" || s == "T" || s == "TRUE" || s == "true" || s == "True") return true;
  if (s == "0" || s == "f" || s == "F" || s == "FALSE" || s == "false" || s == "False") return false;
  return Error::InvalidArgument("invalid boolean value \"" + s + "\"");
}

Result<ParsedFlags> ParseFlags(const std::vector<FlagSpec>& specs, const std::vector<std::string>& args) {
  ParsedFlags out;
  size_t i = 0;
  for (; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.size() < 2 || arg[0] != '-') break;  // first non-flag argument ("-" alone included)
    if (arg == "--") {
      ++i;
      break;
    }
    std::string body = arg.substr(arg[1] == '-' ? 2 : 1);
    if (body.empty() || body[0] == '-' || body[0] == '=')
      return Error::InvalidArgument("bad flag syntax: " + arg);
    std::string name = body, value;
    bool has_value = false;
    if (const size_t eq = body.find('='); eq != std::string::npos) {
      name = body.substr(0, eq);
      value = body.substr(eq + 1);
      has_value = true;
    }
    const FlagSpec* spec = nullptr;
    for (const auto& s : specs)
      for (const auto& n : s.names)
        if (n == name) spec = &s;
    if (spec == nullptr) return Error::InvalidArgument("flag provided but not defined: -" + name);
    const std::string& canonical = spec->names.back();
    if (spec->is_bool) {
      if (has_value) {
        auto b = ParseGoBool(value);
        if (!b) return Error::InvalidArgument("invalid boolean value \"" + value + "\" for -" + name);
        out.values[canonical] = *b ? "true" : "false";
      } else {
        out.values[canonical] = "true";
      }
      continue;
    }
    if (!has_value) {
      if (i + 1 >= args.size()) return Error::InvalidArgument("flag needs an argument: -" + name);
      value = args[++i];
    }
    out.values[canonical] = value;
    out.all[canonical].push_back(value);
  }
  for (; i < args.size(); ++i) out.positional.push_back(args[i]);
  return out;
}

}  // namespace xrayd::cli
