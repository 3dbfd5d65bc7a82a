// How a TypeScript bot uses ongwatch.ts: parse what arrives on a topic, narrow on `type`, and
// the compiler knows every field. `tsc --noEmit -p examples/types` checks this file (tests/types.rs).
import { type BotPresence, type Event, botPresenceTopic, RETAINED, topicOf } from "./ongwatch";

export const subscriptions: string[] = [topicOf("cheer"), topicOf("tip"), topicOf("hype"), botPresenceTopic("my-bot")];

export function describe(event: Event): string {
  // Not every kind has a user (a hype train, a poll): the compiler makes you check.
  const who = "user" in event ? (event.display_name ?? event.user ?? "Anonymous") : "";
  switch (event.type) {
    case "cheer":
      return `${who} cheered ${event.amount} bits: ${event.message}`;
    case "tip":
      return `${who} tipped ${event.amount.toFixed(2)} ${event.currency}`;
    case "hype":
      return `hype level ${event.level} (score ${event.score})${RETAINED.hype ? ", retained" : ""}`;
    default:
      return `${event.type} from ${event.provider}${event.test ? " (test)" : ""}`;
  }
}

export function onMessage(topic: string, payload: string): string {
  if (topic === botPresenceTopic("my-bot")) {
    const presence = JSON.parse(payload) as BotPresence;
    return `I am ${presence.state} and own ${presence.owns.join(", ")}`;
  }
  return describe(JSON.parse(payload) as Event);
}
