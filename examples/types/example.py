"""How a Python bot uses ongwatch_types.py: parse what arrives on a topic, narrow on "type",
and mypy knows every field. `mypy --strict` checks this file (tests/types.rs); run with
--self-test it also checks the types at run time against a cheer as ongwatch publishes it."""
import json
import sys
from typing import cast

from ongwatch_types import RETAINED, BotPresence, Event, bot_presence_topic, topic_of

SUBSCRIPTIONS = [topic_of("cheer"), topic_of("tip"), topic_of("hype"), bot_presence_topic("my-bot")]


def describe(event: Event) -> str:
    if event["type"] == "cheer":
        who = event.get("display_name") or event.get("user") or "Anonymous"
        return f"{who} cheered {event['amount']} bits: {event['message']}"
    if event["type"] == "tip":
        who = event.get("display_name") or event.get("user") or "Anonymous"
        return f"{who} tipped {event['amount']:.2f} {event['currency']}"
    if event["type"] == "hype":
        retained = ", retained" if RETAINED["hype"] else ""
        return f"hype level {event['level']} (score {event['score']}){retained}"
    test = " (test)" if event["test"] else ""
    return f"{event['type']} from {event['provider']}{test}"


def on_message(topic: str, payload: bytes) -> str:
    if topic == bot_presence_topic("my-bot"):
        presence = cast(BotPresence, json.loads(payload))
        return f"I am {presence['state']} and own {', '.join(presence['owns'])}"
    return describe(cast(Event, json.loads(payload)))


if __name__ == "__main__" and "--self-test" in sys.argv:
    cheer = b'{"v":1,"id":"twitch:1","type":"cheer","provider":"twitch","channel":"jonathanong","user":"alinsa_vix","amount":2490,"currency":"bits","message":"Cheer2490 CHAOS","anonymous":false,"time":"2026-03-13T20:01:02.345Z","test":false}'
    line = on_message(topic_of("cheer"), cheer)
    assert line == "alinsa_vix cheered 2490 bits: Cheer2490 CHAOS", line
    assert SUBSCRIPTIONS[0] == "stream/support/cheers", SUBSCRIPTIONS
    print(line)
