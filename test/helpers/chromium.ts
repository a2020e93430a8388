// Finds a Chromium for the real-browser tests with no manual install: CHROMIUM_PATH, the system's, or the binary
// the npm package @sparticuz/chromium ships (unpacked into the temp directory on first use).
import fs from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

const SYSTEM = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];
// As the machine's own probe runs it: no background connections (the network is closed), fresh profile per launch.
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export async function launchChromium(): Promise<Browser> {
  const explicit = process.env.CHROMIUM_PATH;
  if (explicit && !fs.existsSync(explicit)) throw new Error(`CHROMIUM_PATH=${explicit} does not exist`);
  const system = explicit ?? SYSTEM.find((p) => fs.existsSync(p));
  if (system) return chromium.launch({ executablePath: system, args: FLAGS });
  const packaged = (await import('@sparticuz/chromium')).default;
  // Not packaged.args: they are for AWS Lambda (single process, web security off), and the login page's CSP is under test.
  return chromium.launch({ executablePath: await packaged.executablePath(), args: FLAGS });
}
