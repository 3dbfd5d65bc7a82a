"""A bot that publishes a topic of its own: stream/synthetic/crowd, how busy the room is.

It shows the three things a publishing bot does on ongwatch's bus:
- it publishes retained state, so a dashboard that opens later gets the current value at once;
- it owns its topic: the first client to publish under stream/ keeps it while connected and for
  60 s after, so nobody else can overwrite it (they get "not authorized");
- it has a last will on stream/synthetic/crowd/status, which the broker publishes ("offline")
  if the bot dies without saying goodbye, and ongwatch shows its presence, retained, on
  stream/system/bots/<client id>.

usage: python crowd_bot.py [mqtt://host:port]   (or ONGWATCH_MQTT; default mqtt://127.0.0.1:1883)
"""
import json
import os
import sys
import threading
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

url = urlsplit(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ONGWATCH_MQTT", "mqtt://127.0.0.1:1883"))
root = os.environ.get("ONGWATCH_ROOT", "stream")
client_id = "crowd-bot"
crowd_topic = f"{root}/synthetic/crowd"
status_topic = f"{crowd_topic}/status"
presence_topic = f"{root}/system/bots/{client_id}"

chatters: set[str] = set()
followers: set[str] = set()


def publish_crowd(client):
    crowd = {"chatters": len(chatters), "follows": len(followers)}
    # Retained state: the latest value, not a stream of events. QoS 1: the broker confirms it.
    client.publish(crowd_topic, json.dumps(crowd), qos=1, retain=True)
    print(f"crowd: {json.dumps(crowd)}", flush=True)


def on_connect(client, userdata, flags, reason_code, properties):
    client.publish(status_topic, "online", qos=1, retain=True)
    client.subscribe([(f"{root}/chat/messages", 1), (f"{root}/community/follows", 1), (presence_topic, 1)])
    publish_crowd(client)


def on_subscribe(client, userdata, mid, reason_codes, properties):
    print(f"crowd bot: subscribed, publishing {crowd_topic}", flush=True)


def on_publish(client, userdata, mid, reason_code, properties):
    # MQTT 5 tells a publisher when the broker refused: here, when another client owns the topic.
    if reason_code.is_failure:
        print(f"crowd bot: publish refused: {reason_code}", flush=True)


def on_message(client, userdata, message):
    if not message.payload:
        return  # a cleared retained message
    payload = json.loads(message.payload)
    if message.topic == presence_topic:
        # ongwatch's view of this bot: online/offline, the topics it owns, what it published.
        line = f"presence: {payload['state']}, owns {', '.join(payload['owns']) or 'nothing yet'}"
        if line != userdata.get("presence"):  # counters change often; print what matters
            userdata["presence"] = line
            print(line, flush=True)
        return
    who = payload.get("user")
    if who is None:
        return
    group = chatters if payload["type"] == "chat" else followers
    if who not in group:
        group.add(who)
        publish_crowd(client)


client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, userdata={})
# The broker publishes the will when the connection dies without a DISCONNECT (crash, kill, lost
# network). Retained, so whoever looks later still sees that the bot is gone.
client.will_set(status_topic, "offline", qos=1, retain=True)
client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_publish = on_publish
client.on_message = on_message
client.reconnect_delay_set(min_delay=1, max_delay=30)
client.connect_async(url.hostname or "127.0.0.1", url.port or 1883, keepalive=30)
client.loop_start()  # the network loop in its own thread; it retries until ongwatch is there
try:
    threading.Event().wait()
except KeyboardInterrupt:
    # A clean goodbye sends no will, so the bot says it itself.
    client.publish(status_topic, "offline", qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()
