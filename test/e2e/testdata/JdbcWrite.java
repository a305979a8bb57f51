// JdbcWrite connects with a PgJDBC URL read from a file (the URL holds the
// password, so it never goes on a command line), inserts one row tagged
// with TAG if given, and prints which server it reached, whether that is a
// standby, and over which TLS version.
//
// Run from source (the JRE compiles it in memory; no class is committed):
//   java -cp /usr/share/java/postgresql.jar JdbcWrite.java URL-FILE [TAG]
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;

public class JdbcWrite {
    public static void main(String[] args) throws Exception {
        String url = Files.readString(Path.of(args[0])).strip();
        try (Connection c = DriverManager.getConnection(url)) {
            if (args.length > 1) {
                try (PreparedStatement insert = c.prepareStatement(
                        "INSERT INTO conn_strings (via, port) VALUES (?, inet_server_port())")) {
                    insert.setString(1, args[1]);
                    insert.executeUpdate();
                }
            }
            try (ResultSet r = c.createStatement().executeQuery(
                    "SELECT inet_server_port(), pg_is_in_recovery(), "
                    + "(SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid())")) {
                r.next();
                System.out.printf("port=%d recovery=%b tls=%s driver=%s%n", r.getInt(1), r.getBoolean(2),
                        r.getString(3), c.getMetaData().getDriverVersion());
            }
        }
    }
}
