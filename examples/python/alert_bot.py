"""The seed's alert bot: one line per cheer, three lines of it about ongwatch.

ongwatch already did the OAuth, the reconnects and the normalizing: a cheer is a flat JSON
object on stream/support/cheers, whichever service it came from.

usage: python alert_bot.py [mqtt://host:port]   (or ONGWATCH_MQTT; default mqtt://127.0.0.1:1883)
"""
import json
import os
import sys
from collections import deque
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

url = urlsplit(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ONGWATCH_MQTT", "mqtt://127.0.0.1:1883"))
root = os.environ.get("ONGWATCH_ROOT", "stream")  # [bus] topic_root
topic = f"{root}/support/cheers"

# Delivery is at least once (QoS 1, and again after a daemon crash): the same cheer may come
# twice, always with the same id. Remembering the last ids is enough to show it once.
seen: deque[str] = deque(maxlen=1000)


def on_connect(client, userdata, flags, reason_code, properties):
    # Runs again after every reconnect; with clean_start a new session must subscribe anew.
    client.subscribe(topic, qos=1)


def on_subscribe(client, userdata, mid, reason_codes, properties):
    print(f"alert bot: subscribed to {topic}", flush=True)


def on_message(client, userdata, message):
    try:
        cheer = json.loads(message.payload)
    except ValueError:
        return  # not ongwatch's; ongwatch only ever publishes JSON here
    if cheer["id"] in seen:
        return
    seen.append(cheer["id"])
    who = cheer.get("display_name") or cheer.get("user") or "anonymous"
    test = " (test)" if cheer["test"] else ""  # the demo, `ongwatch trigger` and test buttons
    print(f"{who} cheered {cheer['amount']} bits: {cheer['message']}{test}", flush=True)


client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="alert-bot", protocol=mqtt.MQTTv5)
client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_message = on_message
client.reconnect_delay_set(min_delay=1, max_delay=30)  # paho reconnects by itself; this paces it
# connect_async + retry_first_connection: started before ongwatch, it waits for it.
client.connect_async(url.hostname or "127.0.0.1", url.port or 1883, keepalive=30)
client.loop_forever(retry_first_connection=True)
