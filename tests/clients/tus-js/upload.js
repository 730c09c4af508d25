// tus-js-client against the gateway, as tests/end_to_end/test_tus_clients.py runs it:
//   node upload.js <endpoint> <wav file> <user id> <token> [abort at fraction]
// With a fraction, the first upload (in 1 MiB PATCHes) is aborted once that share of the file is
// sent, and a second Upload resumes it from the URL the first one got (what a reloaded page does
// with its stored URL). Prints one JSON line: the upload URL, the offset the server had kept when the second one
// began (its HEAD), and the Record-Location of the last PATCH.
"use strict";

const fs = require("fs");
const tus = require("tus-js-client");

const [endpoint, path, user, token, abortAt] = process.argv.slice(2);
const file = fs.readFileSync(path);
const result = { url: null, resumedAt: null, recordLocation: null };

function options(extra) {
  return {
    endpoint,
    metadata: { user, filename: "tus-js.wav" },
    headers: { Authorization: `Bearer ${token}` },
    retryDelays: [0, 500, 1000, 2000, 4000, 8000],
    onAfterResponse(req, res) {
      const location = res.getHeader("Record-Location");
      if (location) result.recordLocation = location;
      if (req.getMethod() === "HEAD" && result.resumedAt === null) {
        result.resumedAt = Number(res.getHeader("Upload-Offset"));
      }
    },
    ...extra,
  };
}

function run(extra) {
  return new Promise((resolve, reject) => {
    const upload = new tus.Upload(file, options({
      onError: reject,
      onSuccess: () => resolve(upload),
      ...extra,
    }));
    upload.start();
  });
}

async function main() {
  if (abortAt) {
    const first = await new Promise((resolve, reject) => {
      // In PATCHes of 1 MiB, so that progress comes in steps whatever the network's buffers.
      const upload = new tus.Upload(file, options({
        chunkSize: 1 << 20,
        onError: reject,
        onSuccess: () => reject(new Error("the upload ended before it could be aborted")),
        onProgress(sent, total) {
          if (sent >= total * Number(abortAt)) {
            upload.abort(false).then(() => resolve(upload));
          }
        },
      }));
      upload.start();
    });
    result.url = first.url;
    await run({ uploadUrl: first.url });
  } else {
    const upload = await run({});
    result.url = upload.url;
  }
  process.stdout.write(JSON.stringify(result) + "\n");
}

main().catch((error) => {
  process.stderr.write(`${error}\n`);
  process.exit(1);
});
