// Loaded with --import by the bundle smoke check: any import or require that resolves outside the bundle fails,
// so a runtime dependency missing from the production node_modules shows up here and not in the container.
import { registerHooks } from 'node:module';

const root = process.env.IDMS_BUNDLE_ROOT;
if (!root?.startsWith('file:') || !root.endsWith('/')) throw new Error('IDMS_BUNDLE_ROOT must be the bundle directory as a file: URL ending in /');

registerHooks({
  resolve(specifier, context, nextResolve) {
    const result = nextResolve(specifier, context);
    if (result.url.startsWith('file:') && !result.url.startsWith(root)) {
      throw new Error(`"${specifier}" (imported by ${context.parentURL ?? 'the entry point'}) resolves outside the bundle, to ${result.url}`);
    }
    return result;
  },
});
