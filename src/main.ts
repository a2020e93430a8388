// Process entry point for `npm start`, `npm run cli -- …` and the `seal-idms` bin.
import { runCli } from './cli/main.ts';

const code = await runCli(process.argv.slice(2), { env: process.env, stdin: process.stdin, stdout: process.stdout, stderr: process.stderr });
process.exitCode = code;
