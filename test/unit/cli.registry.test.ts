import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Command } from "commander";
import { SUBCOMMANDS, subcommandsFor } from "../../cli/registry.js";
import { runBalsam } from "../support/cli.js";

/**
 * `balsam X ...` defines only subcommand X (cli/registry.ts): the registry's
 * names must be what each command answers to, or a command would vanish.
 */
describe("the subcommand registry", () => {
  test("each entry's names are the name and aliases of the command it defines, and no two entries share one", () => {
    const seen = new Set<string>();
    for (const s of SUBCOMMANDS) {
      const program = new Command("balsam");
      const cmd = s.register(program);
      assert.deepEqual([...s.names].sort(), [cmd.name(), ...cmd.aliases()].sort());
      assert.deepEqual(program.commands.map((c) => c.name()), [cmd.name()], "defines exactly one command");
      for (const n of s.names) {
        assert.ok(!seen.has(n), `${n} twice`);
        seen.add(n);
      }
    }
    assert.equal(SUBCOMMANDS.length, 21);
  });

  test("a command line names one subcommand only when it is the first word", () => {
    assert.deepEqual(subcommandsFor(["ls", "--wf", "x"]).map((s) => s.names[0]), ["ls"]);
    assert.deepEqual(subcommandsFor(["submit-launch"]).map((s) => s.names[0]), ["submit-launch"]);
    for (const args of [[], ["--help"], ["-V"], ["--help", "ls"], ["lss"], ["help", "ls"]]) assert.equal(subcommandsFor(args).length, SUBCOMMANDS.length, args.join(" "));
  });

  test("help and mistakes still see every subcommand", async () => {
    const help = await runBalsam(["--help"]);
    assert.equal(help.code, 0, help.stderr);
    for (const s of SUBCOMMANDS) assert.match(help.stdout, new RegExp(`^  ${s.names[0]}\\b`, "m"), s.names[0]);
    const ls = await runBalsam(["ls", "--help"]);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /^Usage: balsam ls /m);
    const typo = await runBalsam(["lss"]);
    assert.equal(typo.code, 2);
    assert.match(typo.stderr, /unknown command 'lss'[\s\S]*ls/);
  });
});
