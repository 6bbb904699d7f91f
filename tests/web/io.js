// io.js - what both Node clients share: one JSON object per line on stdout
// (the protocol pytest reads), and settings from the environment.
export function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

export function env(name, dflt) {
  const v = process.env[name];
  if (v === undefined || v === "") {
    if (dflt === undefined) throw new Error(`environment variable ${name} is not set`);
    return dflt;
  }
  return v;
}
