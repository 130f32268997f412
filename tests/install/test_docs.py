"""The manual pages and bash completion against the binaries they describe: both pages format
without a warning (groff -ww, man --warnings); hoversync(1) describes every command of
`hoversync --help` and, in that command's section, every option of `hoversync COMMAND --help`,
and every global option; hover-sandbox(1) every option of `hover-sandbox --help`; the bash
completion offers exactly the commands and options that --help lists, and the values of the
options that take a few."""
import os
import re
import subprocess
import unittest

SRC = os.environ["SOURCE_ROOT"]
HOVERSYNC = os.environ["HOVERSYNC_BIN"]
SANDBOX = os.environ["HOVER_SANDBOX_BIN"]
MAN = os.path.join(SRC, "man")
COMPLETION = os.path.join(SRC, "dist", "bash-completion")
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def run(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOVER")}
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
    if r.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (args, r.returncode, r.stderr))
    return r.stdout


def help_options(text):
    """The options of a --help text: its rows ("  --opt ...") and its usage lines."""
    opts = set()
    usage = False
    for line in text.splitlines():
        if line.startswith("Usage:"):
            usage = True
        elif not line.strip():
            usage = False
        if usage:
            opts.update(OPTION.findall(line))
        m = re.match(r"\s+(?:-h, )?(--[a-z][a-z0-9-]*)", line)
        if m:
            opts.add(m.group(1))
    return opts


def global_help():
    """(commands, global option rows, variables) of `hoversync --help`."""
    text = run(HOVERSYNC, "--help")
    commands, options, variables = [], set(), set()
    section = None
    for line in text.splitlines():
        if line.startswith("Commands:"):
            section = "commands"
        elif line.startswith("Global options"):
            section = "options"
        elif not line.strip():
            section = None if section == "commands" else section
        elif section == "commands":
            commands.append(line.split()[0])
        elif section == "options" and line.startswith("  "):
            m = re.match(r"\s+(--[a-z][a-z0-9-]*)", line)
            if m:
                options.add(m.group(1))
            variables.update(re.findall(r"\b(HOVER(?:SYNC)?_[A-Z0-9_]+)\b", line))
    return commands, options, variables


def man_text(page):
    with open(os.path.join(MAN, page)) as f:
        return f.read().replace("\\-", "-")


def man_sections(text):
    """{title's first word: text} of a page's .SH and .SS sections (same first word: merged)."""
    out = {}
    key = ""
    for line in text.splitlines():
        if line.startswith((".SH", ".SS")):
            title = line[3:].strip().strip('"')
            key = title.split()[0] if title else ""
        out[key] = out.get(key, "") + line + "\n"
    return out


def complete(script, *words):
    """What bash completion offers after `words` (the last one is being completed)."""
    func = "_hoversync" if script == "hoversync" else "_hover_sandbox"
    code = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); '
            '%s; printf "%%s\\n" "${COMPREPLY[@]}"' % func)
    r = subprocess.run(["bash", "-c", code, "complete", os.path.join(COMPLETION, script),
                        script, *words], capture_output=True, text=True, timeout=30)
    if r.returncode != 0 or r.stderr:
        raise AssertionError("completion of %s failed: %s" % (words, r.stderr))
    return set(w for w in r.stdout.split("\n") if w)


class ManualPages(unittest.TestCase):
    def test_pages_format_without_warnings(self):
        for page in ("hoversync.1", "hover-sandbox.1"):
            path = os.path.join(MAN, page)
            r = subprocess.run(["groff", "-ww", "-z", "-man", path], capture_output=True,
                               text=True)
            self.assertEqual((r.returncode, r.stderr), (0, ""), "groff -ww: " + page)
            r = subprocess.run(["man", "--warnings", "-l", path], capture_output=True,
                               text=True, env=dict(os.environ, MANWIDTH="80"))
            self.assertEqual((r.returncode, r.stderr), (0, ""), "man --warnings: " + page)
            self.assertTrue(re.search(r"^NAME$", r.stdout, re.M), "man -l %s: no NAME" % page)

    def test_hoversync_page_describes_every_command_and_option(self):
        commands, options, variables = global_help()
        self.assertIn("serve", commands)
        text = man_text("hoversync.1")
        sections = man_sections(text)
        titled = set(re.findall(r"^\.SS \"?([a-z]+)", text, re.M))
        titled |= set(re.findall(r"^\.SS \"?[a-z]+ [^\"]*, ([a-z]+)", text, re.M))
        for cmd in commands:
            self.assertTrue(cmd in titled, "hoversync(1) has no section for the command " + cmd)
        for cmd in commands:
            if cmd in ("help", "version"):
                continue
            for opt in help_options(run(HOVERSYNC, cmd, "--help")) - {"--help"}:
                self.assertTrue(opt in sections[cmd],
                                "hoversync(1)'s section %s lacks %s" % (cmd, opt))
        for opt in options:
            self.assertTrue(opt in sections["GLOBAL"], "GLOBAL OPTIONS lacks " + opt)
        for var in variables:
            self.assertTrue(var in text, "hoversync(1) lacks " + var)
        for word in ("--version", "-h", "--help"):
            self.assertTrue(word in sections["help"], "the section help lacks " + word)

    def test_sandbox_page_describes_every_option(self):
        opts = help_options(run(SANDBOX, "--help"))
        self.assertIn("--fault", opts)
        text = man_text("hover-sandbox.1")
        for opt in opts:
            self.assertTrue(opt in text, "hover-sandbox(1) lacks " + opt)


class BashCompletion(unittest.TestCase):
    def test_commands(self):
        commands, _, _ = global_help()
        self.assertEqual(complete("hoversync", ""), set(commands))
        self.assertEqual(complete("hoversync", "se"), {"search", "serve"})
        # Global options and their values are skipped to find the command.
        self.assertEqual(complete("hoversync", "--db", "x.db", "--log-level=info", "sea"),
                         {"search"})
        self.assertEqual(complete("hoversync", "help", ""), set(commands))
        self.assertEqual(complete("hoversync", "webhooks", ""), {"register", "list", "delete"})
        self.assertEqual(complete("hoversync", "config", ""), {"show"})

    def test_options_are_those_of_help(self):
        commands, global_opts, _ = global_help()
        global_opts |= {"--help", "--version"}
        self.assertEqual(complete("hoversync", "--"), global_opts)
        for cmd in commands:
            if cmd in ("help", "version", "config"):
                continue
            want = help_options(run(HOVERSYNC, cmd, "--help"))
            got = complete("hoversync", cmd, "--")
            self.assertEqual(got, global_opts | want,
                             "%s: missing %s, not in its help %s" % (
                                 cmd, sorted(want - got), sorted(got - global_opts - want)))

    def test_values(self):
        self.assertEqual(complete("hoversync", "--log-level", ""),
                         {"debug", "info", "warn", "error", "off"})
        self.assertEqual(complete("hoversync", "search", "--state", ""), {"completed", "failed"})
        self.assertEqual(complete("hoversync", "search", "--order", ""), {"asc", "desc"})
        self.assertEqual(complete("hoversync", "--rate-limit", ""), set())
        help_text = run(HOVERSYNC, "--help")
        self.assertIn("debug, info, warn, error or off", help_text)

    def test_sandbox_options(self):
        opts = help_options(run(SANDBOX, "--help"))
        self.assertEqual(complete("hover-sandbox", "--"), opts)
        self.assertEqual(complete("hover-sandbox", "--log-level", "w"), {"warn"})


if __name__ == "__main__":
    unittest.main(verbosity=2)
