// One token round trip with java.net.http.HttpClient at its defaults (which prefer HTTP/2
// and so offer `Upgrade: h2c` on a cleartext URL): a token from the password grant, then
// GET /users/me. JDK 11 or newer, no dependencies.
// Usage: java TokenRoundTrip.java http://127.0.0.1:8000 alice   (password on standard input)
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

public class TokenRoundTrip {
    public static void main(String[] args) throws Exception {
        String base = args[0];
        String username = args[1];
        String password = new BufferedReader(
                new InputStreamReader(System.in, StandardCharsets.UTF_8)).readLine();

        HttpClient client = HttpClient.newHttpClient();
        String form = "grant_type=password"
                + "&username=" + URLEncoder.encode(username, StandardCharsets.UTF_8)
                + "&password=" + URLEncoder.encode(password, StandardCharsets.UTF_8);
        HttpRequest tokenRequest = HttpRequest.newBuilder(URI.create(base + "/oauth/token"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .POST(HttpRequest.BodyPublishers.ofString(form))
                .build();
        HttpResponse<String> token = client.send(tokenRequest, HttpResponse.BodyHandlers.ofString());
        if (token.statusCode() != 200) {
            System.err.println("token request failed: " + token.statusCode() + " " + token.body());
            System.exit(1);
        }
        // A JSON library would do this in a real program; the example keeps to the JDK.
        Matcher match = Pattern.compile("\"access_token\"\\s*:\\s*\"([^\"]+)\"").matcher(token.body());
        if (!match.find()) {
            System.err.println("no access_token in " + token.body());
            System.exit(1);
        }

        HttpRequest meRequest = HttpRequest.newBuilder(URI.create(base + "/users/me"))
                .header("Authorization", "Bearer " + match.group(1))
                .build();
        HttpResponse<String> me = client.send(meRequest, HttpResponse.BodyHandlers.ofString());
        System.out.println(me.statusCode() + " " + me.body());
        System.exit(me.statusCode() == 200 ? 0 : 1);
    }
}
