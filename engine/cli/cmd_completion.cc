// runbook completion bash|zsh: a completion script for the shell, generated
// from the same command-line definition the binary parses (subcommands,
// their options, and what their arguments are: a runbook file or a run id).
#include <string>
#include <vector>

#include "engine/cli/cli.h"

namespace runbook {

namespace {

std::string Join(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

// Every spelling of the options of `app` ("-p --param --log-format ...").
std::vector<std::string> OptionWords(const CLI::App& app) {
  std::vector<std::string> out;
  for (const CLI::Option* o : app.get_options()) {
    if (o->get_positional()) continue;
    for (const auto& s : o->get_snames()) out.push_back("-" + s);
    for (const auto& l : o->get_lnames()) out.push_back("--" + l);
  }
  return out;
}

// What the positional arguments of `sub` are: "runid", "shell", "file" or "".
std::string PositionalKind(const CLI::App& sub) {
  for (const CLI::Option* o : sub.get_options()) {
    if (!o->get_positional()) continue;
    if (o->get_name() == "RUN_ID") return "runid";
    if (o->get_name() == "SHELL") return "shell";
    return "file";
  }
  return "";
}

// The bash script: a function that completes subcommands, then each
// subcommand's options, runbook files, or run ids (`last`, `last-failed` and
// those `runbook status --json` lists).
std::string BashScript(CLI::App& app) {
  std::vector<std::string> names;
  std::string cases;
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    names.push_back(sub->get_name());
    cases += "    " + sub->get_name() + ") opts=\"" + Join(OptionWords(*sub)) +
             "\"; kind=" + PositionalKind(*sub) + " ;;\n";
  }
  return "# runbook completion for bash: eval \"$(runbook completion bash)\" in ~/.bashrc\n"
         "_runbook() {\n"
         "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" cmd=\"\" opts=\"\" kind=\"\" i\n"
         "  local global=\"" +
         Join(OptionWords(app)) +
         "\"\n"
         "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
         "    case \"${COMP_WORDS[i]}\" in\n"
         "      --state) ((i++)) ;;\n"
         "      -*) ;;\n"
         "      *) cmd=\"${COMP_WORDS[i]}\"; break ;;\n"
         "    esac\n"
         "  done\n"
         "  if [[ \"${COMP_WORDS[COMP_CWORD-1]}\" == --state ]]; then\n"
         "    COMPREPLY=($(compgen -f -- \"$cur\")); return\n"
         "  fi\n"
         "  if [[ -z \"$cmd\" ]]; then\n"
         "    COMPREPLY=($(compgen -W \"" +
         Join(names) +
         " $global\" -- \"$cur\")); return\n"
         "  fi\n"
         "  case \"$cmd\" in\n" +
         cases +
         "  esac\n"
         "  if [[ \"$cur\" == -* ]]; then\n"
         "    COMPREPLY=($(compgen -W \"$opts $global\" -- \"$cur\")); return\n"
         "  fi\n"
         "  case \"$kind\" in\n"
         "    file) COMPREPLY=($(compgen -f -- \"$cur\")) ;;\n"
         "    shell) COMPREPLY=($(compgen -W \"bash zsh\" -- \"$cur\")) ;;\n"
         "    runid)\n"
         "      local ids\n"
         "      ids=$(runbook status --json 2>/dev/null | sed -n 's/^ *\"run\": "
         "\"\\([^\"]*\\)\",*$/\\1/p')\n"
         "      COMPREPLY=($(compgen -W \"last last-failed $ids\" -- \"$cur\")) ;;\n"
         "  esac\n"
         "}\n"
         "complete -o filenames -o bashdefault -F _runbook runbook\n";
}

}  // namespace

void AddCompletionCommand(CLI::App& app, Cli& cli) {
  static std::string shell;
  auto* cmd = app.add_subcommand("completion", "print a shell completion script (bash or zsh)");
  cmd->add_option("SHELL", shell, "bash | zsh")->required()->check(CLI::IsMember({"bash", "zsh"}));
  cmd->callback([&app, &cli]() {
    const std::string bash = BashScript(app);
    if (shell == "zsh") {
      // zsh runs bash completion functions through bashcompinit.
      printf(
          "# runbook completion for zsh: eval \"$(runbook completion zsh)\" in ~/.zshrc\n"
          "autoload -U +X compinit && compinit\n"
          "autoload -U +X bashcompinit && bashcompinit\n%s",
          bash.c_str());
    } else {
      printf("%s", bash.c_str());
    }
    cli.exit_code = 0;
  });
}

}  // namespace runbook
