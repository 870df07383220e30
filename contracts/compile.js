// Compiles src/*.sol with the pinned solc-js (no compiler download) into
// build/<Contract>.json: ABI, creation and runtime bytecode, and the exact
// compiler settings. Deterministic: fixed compiler, fixed settings, no
// metadata hash or CBOR trailer in the bytecode, sorted inputs.
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const PINNED = "0.8.30";
const here = __dirname;
const version = solc.version();
if (!version.startsWith(PINNED + "+")) {
  console.error(`solc ${version} is not the pinned ${PINNED}: run npm ci`);
  process.exit(1);
}

const settings = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: "cancun",
  metadata: { bytecodeHash: "none", appendCBOR: false },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};

const srcDir = path.join(here, "src");
const files = fs.readdirSync(srcDir).filter((f) => f.endsWith(".sol")).sort();
const sources = {};
for (const f of files) {
  sources[`src/${f}`] = { content: fs.readFileSync(path.join(srcDir, f), "utf8") };
}

function findImports(p) {
  if (!p.startsWith("@openzeppelin/contracts/")) return { error: `import outside OpenZeppelin: ${p}` };
  const full = path.join(here, "node_modules", p);
  try {
    return { contents: fs.readFileSync(full, "utf8") };
  } catch (e) {
    return { error: `cannot read ${p}: ${e.message}` };
  }
}

const input = { language: "Solidity", sources, settings };
const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) console.error(e.formattedMessage);
if (errors.length > 0) process.exit(1);

const outDir = path.join(here, "build");
fs.mkdirSync(outDir, { recursive: true });
const ozVersion = require("@openzeppelin/contracts/package.json").version;
for (const f of files) {
  for (const [name, c] of Object.entries(output.contracts[`src/${f}`] || {})) {
    const artifact = {
      contractName: name,
      source: `src/${f}`,
      compiler: { solc: version, openzeppelin: ozVersion, settings: { ...settings, outputSelection: undefined } },
      abi: c.abi,
      bytecode: "0x" + c.evm.bytecode.object,
      deployedBytecode: "0x" + c.evm.deployedBytecode.object,
    };
    fs.writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify(artifact, null, 2) + "\n");
    console.log(`build/${name}.json: ${c.evm.deployedBytecode.object.length / 2} bytes deployed`);
  }
}
