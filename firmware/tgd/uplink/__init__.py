# The way to the server: signed messages (link.py) over HTTP (http.py) or MQTT
# (mqtt.py), and the commands an answer carries (commands.py).
