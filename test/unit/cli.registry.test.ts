import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Command } from "commander";
import { SUBCOMMANDS, subcommandsFor } from "../../cli/registry.js";
import { runBalsam } from "../support/cli.js";

/**
 * `balsam X ...` defines only subcommand X (cli/registry.ts): the registry's
 * names must be what each command answers to.
 */
describe("the subcommand registry", () => {
  test("each entry's name is the command it defines (which has no aliases), and no two entries share one", () => {
    const seen = new Set<string>();
    for (const s of SUBCOMMANDS) {
      const program = new Command("balsam");
      const cmd = s.register(program);
      assert.deepEqual([cmd.name(), ...cmd.aliases()], [s.name], "an alias would need its own registry entry");
      assert.deepEqual(program.commands.map((c) => c.name()), [cmd.name()], "defines exactly one command");
      assert.ok(!seen.has(s.name), `${s.name} twice`);
      seen.add(s.name);
    }
    assert.equal(SUBCOMMANDS.length, 22);
  });

  test("a command line names one subcommand only when it is the first word", () => {
    assert.deepEqual(subcommandsFor(["ls", "--wf", "x"]).map((s) => s.name), ["ls"]);
    assert.deepEqual(subcommandsFor(["submit-launch"]).map((s) => s.name), ["submit-launch"]);
    for (const args of [[], ["--help"], ["-V"], ["--help", "ls"], ["lss"], ["help", "ls"]]) assert.equal(subcommandsFor(args).length, SUBCOMMANDS.length, args.join(" "));
  });

  test("help and mistakes still see every subcommand", async () => {
    const help = await runBalsam(["--help"]);
    assert.equal(help.code, 0, help.stderr);
    for (const s of SUBCOMMANDS) assert.match(help.stdout, new RegExp(`^  ${s.name}\\b`, "m"), s.name);
    const ls = await runBalsam(["ls", "--help"]);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /^Usage: balsam ls /m);
    const typo = await runBalsam(["lss"]);
    assert.equal(typo.code, 2);
    assert.match(typo.stderr, /unknown command 'lss'[\s\S]*ls/);
  });

  test("no command, or help for one that does not exist, is a usage error (exit 2, the help on stderr); help asked for is not", async () => {
    for (const args of [[], ["help", "nosuch"]]) {
      const r = await runBalsam(args);
      assert.equal(r.code, 2, args.join(" "));
      assert.match(r.stderr, /^Usage: balsam /m, args.join(" "));
      assert.equal(r.stdout, "", args.join(" "));
    }
    for (const args of [["help"], ["help", "ls"]]) {
      const r = await runBalsam(args);
      assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stdout, /^Usage: balsam /m, args.join(" "));
    }
  });
});
