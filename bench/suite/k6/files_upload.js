// bench/files.py's upload phase with k6 as the client: CLIENTS virtual users share UPLOADS
// record creates, each a multipart body with a 1 MiB file (FILE) and the record's fields.
// A Go client costs the two cores far less than a Python one encoding the same bodies.
import http from "k6/http";

const payload = open(__ENV.FILE, "b");
export const options = {
  discardResponseBodies: true,
  summaryTrendStats: ["avg", "min", "med", "max", "p(50)", "p(90)", "p(95)", "p(99)"],
  scenarios: {
    uploads: {
      executor: "shared-iterations",
      vus: Number(__ENV.CLIENTS),
      iterations: Number(__ENV.UPLOADS),
      maxDuration: "10m",
    },
  },
};

const params = {
  headers: { Authorization: `Bearer ${__ENV.TOKEN}` },
  responseCallback: http.expectedStatuses(201),
};

export default function () {
  http.post(
    `${__ENV.BASE}/api/v1/collections/uploads/records`,
    { data: '{"title":"b"}', blob: http.file(payload, "b.bin", "application/octet-stream") },
    params,
  );
}

export function handleSummary(data) {
  return { [__ENV.SUMMARY_OUT]: JSON.stringify(data) };
}
