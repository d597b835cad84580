// The official Node SDK against the gateway (ANTHROPIC_BASE_URL): messages, a stream,
// a message batch and a file. Prints one JSON object of what it saw; exits 1 on an error.
import Anthropic, { toFile } from "@anthropic-ai/sdk";

const client = new Anthropic({ maxRetries: 0 }); // ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY
const model = "claude-haiku-4-5";
const ask = (text) => ({ model, max_tokens: 40, messages: [{ role: "user", content: text }] });
const seen = {};

const message = await client.messages.create(ask("Hello there"));
seen.message = { type: message.content[0].type, output_tokens: message.usage.output_tokens };

const stream = client.messages.stream(ask("Tell me about rivers"));
let streamed = "";
stream.on("text", (text) => { streamed += text; });
const final = await stream.finalMessage();
seen.stream = { text_matches: streamed === final.content[0].text, stop: final.stop_reason };

let batch = await client.messages.batches.create({
  requests: [
    { custom_id: "one", params: ask("Hello") },
    { custom_id: "two", params: ask("Goodbye") },
  ],
});
const deadline = Date.now() + 10_000;
while (batch.processing_status !== "ended" && Date.now() < deadline) {
  await new Promise((resolve) => setTimeout(resolve, 10));
  batch = await client.messages.batches.retrieve(batch.id);
}
const results = [];
for await (const entry of await client.messages.batches.results(batch.id)) {
  results.push([entry.custom_id, entry.result.type]);
}
seen.batch = { status: batch.processing_status, results_url: batch.results_url, results };

const bytes = Buffer.from("The river bends north past the old mill.\n".repeat(500));
const file = await client.beta.files.upload({
  file: await toFile(bytes, "notes.txt", { type: "text/plain" }),
});
const downloaded = Buffer.from(await (await client.beta.files.download(file.id)).arrayBuffer());
await client.beta.files.delete(file.id);
seen.file = { size: file.size_bytes, same_bytes: downloaded.equals(bytes) };

console.log(JSON.stringify(seen));
