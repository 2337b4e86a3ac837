/*
 * DynamoDB Local, listening on one address (loopback by default) instead of every interface.
 *
 * DynamoDB Local's command line has no bind-address option: its server builds a Jetty Server from the port
 * alone, whose connector binds the wildcard address. This builds the server exactly as DynamoDB Local's own
 * main class does (ServerRunner.createServerFromCommandLineArgs, the same arguments), sets the host of its
 * connector before starting it, and checks where it listens. Telemetry is never configured here, so none is
 * sent. Compiled once by local_run/dynamodb_local.py with the Java runtime's own compiler module.
 *
 * Usage: java -cp <cache>:DynamoDBLocal.jar:DynamoDBLocal_lib/* -Ddynamodb.local.host=127.0.0.1
 *        LoopbackDynamoDBLocal <DynamoDB Local's arguments>
 */

import java.lang.reflect.Field;
import java.net.InetAddress;

import org.eclipse.jetty.server.AbstractNetworkConnector;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.NetworkConnector;
import org.eclipse.jetty.server.Server;

import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

public final class LoopbackDynamoDBLocal {
    private LoopbackDynamoDBLocal() {
    }

    public static void main(String[] args) throws Exception {
        String host = System.getProperty("dynamodb.local.host", "127.0.0.1");
        if (!InetAddress.getByName(host).isLoopbackAddress()) {
            throw new IllegalArgumentException("refusing to listen on " + host + ": not a loopback address");
        }
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
        Field serverField = DynamoDBProxyServer.class.getDeclaredField("server");
        serverField.setAccessible(true);
        Server server = (Server) serverField.get(proxy);
        Connector[] connectors = server.getConnectors();
        if (connectors.length == 0) {
            throw new IllegalStateException("DynamoDB Local's server has no connector to bind");
        }
        for (Connector connector : connectors) {
            if (!(connector instanceof AbstractNetworkConnector)) {
                throw new IllegalStateException("unexpected connector " + connector);
            }
            ((AbstractNetworkConnector) connector).setHost(host);
        }
        proxy.start();
        for (Connector connector : server.getConnectors()) {
            NetworkConnector network = (NetworkConnector) connector;
            if (!host.equals(network.getHost())) {
                proxy.stop();
                throw new IllegalStateException("DynamoDB Local listens on " + network.getHost() + ", not " + host);
            }
            System.err.println("DynamoDB Local listening on " + network.getHost() + ":" + network.getLocalPort());
        }
    }
}
