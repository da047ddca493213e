#ifndef PARLEY_CRABBITMQ_SHIM_H
#define PARLEY_CRABBITMQ_SHIM_H

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <amqp_ssl_socket.h>
#include <poll.h>
#include <sys/eventfd.h>

/* amqp_login_with_properties is variadic, which Swift cannot call. This wrapper logs in
 * with SASL PLAIN and announces the capabilities Parley relies on: broker-initiated consumer
 * cancel (consumer_cancel_notify), publisher confirms with basic.nack, connection.blocked, and
 * a connection name shown in the management UI. */
static inline amqp_rpc_reply_t parley_amqp_login_plain(amqp_connection_state_t conn,
                                                       const char *vhost, int channel_max,
                                                       int frame_max, int heartbeat,
                                                       const char *user, const char *password,
                                                       const char *connection_name) {
    amqp_table_entry_t caps[5];
    caps[0].key = amqp_cstring_bytes("consumer_cancel_notify");
    caps[0].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    caps[0].value.value.boolean = 1;
    caps[1].key = amqp_cstring_bytes("publisher_confirms");
    caps[1].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    caps[1].value.value.boolean = 1;
    caps[2].key = amqp_cstring_bytes("basic.nack");
    caps[2].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    caps[2].value.value.boolean = 1;
    caps[3].key = amqp_cstring_bytes("connection.blocked");
    caps[3].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    caps[3].value.value.boolean = 1;
    caps[4].key = amqp_cstring_bytes("authentication_failure_close");
    caps[4].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    caps[4].value.value.boolean = 1;

    amqp_table_entry_t props[3];
    props[0].key = amqp_cstring_bytes("capabilities");
    props[0].value.kind = AMQP_FIELD_KIND_TABLE;
    props[0].value.value.table.num_entries = 5;
    props[0].value.value.table.entries = caps;
    props[1].key = amqp_cstring_bytes("connection_name");
    props[1].value.kind = AMQP_FIELD_KIND_UTF8;
    props[1].value.value.bytes = amqp_cstring_bytes(connection_name);
    props[2].key = amqp_cstring_bytes("product");
    props[2].value.kind = AMQP_FIELD_KIND_UTF8;
    props[2].value.value.bytes = amqp_cstring_bytes("Parley");

    amqp_table_t table;
    table.num_entries = 3;
    table.entries = props;
    return amqp_login_with_properties(conn, vhost, channel_max, frame_max, heartbeat, &table,
                                      AMQP_SASL_METHOD_PLAIN, user, password);
}

#endif
