// Builds the console into ../transport/console_static (not committed): the daemon serves it.
// `make ui` runs this; nothing here is fetched at run time (three comes from node_modules).
import { build } from "esbuild";
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "transport", "console_static");

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: {
    main: join(here, "src", "main.js"),
    worker: join(here, "src", "worker.js"),
    frames: join(here, "src", "frames.js"),
    "mic-worklet": join(here, "src", "mic-worklet.js"),
  },
  outdir: out,
  bundle: true,
  format: "esm",
  splitting: true,
  minify: true,
  sourcemap: false,
  target: ["chrome120", "firefox120", "safari17"],
  legalComments: "none",
  logLevel: "warning",
});
for (const file of ["index.html", "style.css", "favicon.svg"]) {
  cpSync(join(here, file), join(out, file));
}
console.log(`console built into ${out}`);
