"""The seed's example bot, as a newcomer writes it with paho-mqtt and no configuration:
it reacts to cheers and publishes its own hype value. Prints one line per step so the test
can follow it. Usage: seed_bot.py PORT [CLIENT_ID]"""
import json
import sys

import paho.mqtt.client as mqtt

port = int(sys.argv[1])
client_id = sys.argv[2] if len(sys.argv) > 2 else "seed-hype-bot"
level = 0


def on_connect(client, userdata, flags, reason_code, properties):
    client.subscribe("stream/support/cheers", qos=1)


def on_subscribe(client, userdata, mid, reason_codes, properties):
    print("subscribed", flush=True)


def on_message(client, userdata, message):
    global level
    cheer = json.loads(message.payload)
    print(f"cheer {cheer['user']} {cheer['amount']}", flush=True)
    level += 1
    client.publish("stream/synthetic/hype", json.dumps({"level": level, "score": cheer["amount"]}), qos=1, retain=True)
    print(f"published hype {level}", flush=True)


client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_message = on_message
client.connect("127.0.0.1", port, keepalive=5)
client.loop_forever()
