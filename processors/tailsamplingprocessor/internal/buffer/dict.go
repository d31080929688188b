package buffer

// Attribute keys and string values that recur in nearly every span are
// written as one-byte dictionary references instead of their text: about a
// third of a typical span's encoding. The lists are part of the encoding
// (the restart snapshot's version covers them): append only, never reorder.
var dictKeys = []string{
	// HTTP, new and old conventions
	"http.request.method", "http.response.status_code", "http.route", "url.full", "url.path", "url.scheme",
	"url.query", "http.method", "http.status_code", "http.url", "http.target", "http.scheme", "http.host",
	"http.flavor", "http.user_agent", "user_agent.original", "http.request.resend_count",
	"http.request.body.size", "http.response.body.size", "http.request_content_length",
	"http.response_content_length", "network.protocol.name", "network.protocol.version",
	"network.peer.address", "network.peer.port", "network.transport", "network.type",
	"client.address", "client.port", "server.address", "server.port", "net.peer.name", "net.peer.port",
	"net.peer.ip", "net.host.name", "net.host.port", "net.sock.peer.addr", "net.sock.peer.port",
	"net.transport", "peer.service", "service.peer.name", "error.type",
	// RPC
	"rpc.system", "rpc.service", "rpc.method", "rpc.grpc.status_code", "rpc.response.status_code",
	// Databases, messaging
	"db.system", "db.system.name", "db.name", "db.namespace", "db.statement", "db.query.text",
	"db.operation", "db.operation.name", "db.collection.name", "db.sql.table", "db.user",
	"db.redis.database_index", "messaging.system", "messaging.destination.name", "messaging.operation",
	"messaging.operation.type", "messaging.message.id", "messaging.message.body.size",
	"messaging.kafka.partition", "messaging.kafka.destination.partition",
	// Code, exceptions, threads
	"code.function", "code.namespace", "code.filepath", "code.lineno", "code.function.name",
	"exception.type", "exception.message", "exception.stacktrace", "exception.escaped",
	"thread.id", "thread.name", "otel.status_code", "otel.status_description", "otel.library.name",
	// Resource
	"service.name", "service.version", "service.namespace", "service.instance.id",
	"deployment.environment", "deployment.environment.name", "host.name", "host.arch", "host.id",
	"os.type", "os.description", "process.pid", "process.runtime.name", "process.runtime.version",
	"process.runtime.description", "process.executable.name", "process.command_args",
	"telemetry.sdk.name", "telemetry.sdk.language", "telemetry.sdk.version", "telemetry.distro.name",
	"telemetry.distro.version", "container.id", "container.name", "container.image.name",
	"container.image.tag", "k8s.namespace.name", "k8s.pod.name", "k8s.pod.uid", "k8s.node.name",
	"k8s.deployment.name", "k8s.replicaset.name", "k8s.statefulset.name", "k8s.daemonset.name",
	"k8s.container.name", "k8s.cluster.name", "cloud.provider", "cloud.region", "cloud.availability_zone",
	"cloud.platform", "cloud.account.id",
}

var dictValues = []string{
	"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "http", "https", "1.1", "2", "2.0",
	"grpc", "tcp", "udp", "ipv4", "ipv6", "postgresql", "mysql", "redis", "mongodb", "kafka",
	"rabbitmq", "SELECT", "INSERT", "UPDATE", "go", "java", "python", "nodejs", "dotnet", "opentelemetry",
	"linux", "amd64", "arm64", "production", "staging", "OK", "ERROR", "UNSET", "publish", "receive",
	"process", "200", "201", "204", "400", "404", "500", "503", "timeout", "true", "false",
}

var dictKeyIndex, dictValueIndex = index(dictKeys), index(dictValues)

func index(list []string) map[string]uint64 {
	m := make(map[string]uint64, len(list))
	for i, s := range list {
		if _, dup := m[s]; !dup {
			m[s] = uint64(i)
		}
	}
	return m
}
