/*
 * tgd_guard: a Mosquitto 2.0 plugin (plugin API version 5) for the TGD fleet.
 *
 * Mosquitto's acl_file checks what a client publishes and what it is delivered,
 * never what it subscribes to, nor a publish's retain flag (docs/mqtt.md,
 * "Subscriptions"). This plugin adds those two checks, before the acl_file:
 *
 *   - a handset (any user outside the service namespace "tgd-") may subscribe to
 *     exactly one topic, tgd/<its user name>/down: a $share group, a wildcard or
 *     another handset's topic is refused in the SUBACK;
 *   - a handset may not publish a retained message on an .../up topic.
 *
 * Everything else is left to the acl_file (MOSQ_ERR_PLUGIN_DEFER). Service accounts
 * (the bridge) are not checked here.
 *
 * Build:  cc -shared -fPIC -O2 -o /usr/lib/mosquitto/tgd_guard.so deploy/mosquitto/tgd_guard.c
 * Load:   plugin /usr/lib/mosquitto/tgd_guard.so   (deploy/mosquitto/mosquitto.conf)
 *
 * The few declarations below are those of Mosquitto 2.0's mosquitto_broker.h and
 * mosquitto_plugin.h (package mosquitto-dev), copied so that no header is needed.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

typedef struct mosquitto_plugin_id_t mosquitto_plugin_id_t;
struct mosquitto;
struct mosquitto_opt {
	char *key;
	char *value;
};
struct mosquitto_evt_acl_check {
	void *future;
	struct mosquitto *client;
	const char *topic;
	const void *payload;
	void *properties;
	int access;
	uint32_t payloadlen;
	uint8_t qos;
	bool retain;
	void *future2[4];
};
typedef int (*tgd_callback)(int event, void *event_data, void *userdata);
int mosquitto_callback_register(mosquitto_plugin_id_t *identifier, int event,
                                tgd_callback cb, const void *event_data, void *userdata);
int mosquitto_callback_unregister(mosquitto_plugin_id_t *identifier, int event,
                                  tgd_callback cb, const void *event_data);
const char *mosquitto_client_username(const struct mosquitto *client);

#define MOSQ_EVT_ACL_CHECK 2
#define MOSQ_ACL_WRITE 0x02
#define MOSQ_ACL_SUBSCRIBE 0x04
#define MOSQ_ERR_ACL_DENIED 12
#define MOSQ_ERR_PLUGIN_DEFER 17
#define SERVICE_PREFIX "tgd-"

static mosquitto_plugin_id_t *plugin_id;

static bool ends_with(const char *text, const char *end)
{
	size_t n = strlen(text), m = strlen(end);
	return n >= m && strcmp(text + n - m, end) == 0;
}

/* tgd/<user>/down, exactly */
static bool own_downlink(const char *topic, const char *user)
{
	size_t n = strlen(user);
	return strncmp(topic, "tgd/", 4) == 0 && strncmp(topic + 4, user, n) == 0
		&& strcmp(topic + 4 + n, "/down") == 0;
}

static int acl_check(int event, void *event_data, void *userdata)
{
	const struct mosquitto_evt_acl_check *ed = event_data;
	const char *user = mosquitto_client_username(ed->client);
	(void)event;
	(void)userdata;
	if (user == NULL || ed->topic == NULL)
		return MOSQ_ERR_ACL_DENIED;
	if (strncasecmp(user, SERVICE_PREFIX, strlen(SERVICE_PREFIX)) == 0)
		return MOSQ_ERR_PLUGIN_DEFER;
	if (ed->access == MOSQ_ACL_SUBSCRIBE && !own_downlink(ed->topic, user))
		return MOSQ_ERR_ACL_DENIED;
	if (ed->access == MOSQ_ACL_WRITE && ed->retain && ends_with(ed->topic, "/up"))
		return MOSQ_ERR_ACL_DENIED;
	return MOSQ_ERR_PLUGIN_DEFER;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	(void)supported_version_count;
	(void)supported_versions;
	return 5;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
                          struct mosquitto_opt *options, int option_count)
{
	(void)userdata;
	(void)options;
	(void)option_count;
	plugin_id = identifier;
	return mosquitto_callback_register(identifier, MOSQ_EVT_ACL_CHECK, acl_check, NULL, NULL);
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	(void)userdata;
	(void)options;
	(void)option_count;
	return mosquitto_callback_unregister(plugin_id, MOSQ_EVT_ACL_CHECK, acl_check, NULL);
}
