go test fuzz v1
string("POST")
string("/v1/webhooks/waha")
string("Content-Type: application/json\nX-Wawp-Signature: k3y")
[]byte("{\n  \"id\": \"evt_01...\",\n  \"timestamp\": 1634567890123,\n  \"session\": \"default\",\n  \"metadata\": {\n    \"user.id\": \"123\",\n    \"user.email\": \"email@example.com\"\n  },\n  \"engine\": \"WEBJS\",\n  \"event\": \"message.ack\",\n  \"payload\": {\n    \"id\": \"true_11111111111@c.us_...\",\n    \"ack\": 3,\n    \"ackName\": \"READ\",\n    \"chatId\": \"11111111111@c.us\"\n  },\n  \"me\": {\n    \"id\": \"11111111111@c.us\",\n    \"lid\": \"123@lid\",\n    \"pushName\": \"Instance\"\n  }\n}\n")
byte('\x00')
