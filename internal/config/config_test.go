package config

import "testing"

func TestParseEnvNamesWhatIsMissingOrWrong(t *testing.T) {
	type settings struct {
		Host    string `env:"X_HOST,required" expected:"the server's host name"`
		Name    string `env:"X_NAME,notEmpty"`
		Retries int    `env:"X_RETRIES" envDefault:"3"`
	}
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"X_NAME": "n"}, "X_HOST is not set: expected the server's host name"},
		{map[string]string{"X_HOST": "h", "X_NAME": ""}, "X_NAME is empty: expected a value"},
		{map[string]string{"X_HOST": "h", "X_NAME": "n", "X_RETRIES": "many"}, `X_RETRIES="many": expected a whole number`},
	} {
		var s settings
		err := ParseEnv(&s, c.env)
		if err == nil || err.Error() != c.want || !IsConfigError(err) {
			t.Errorf("%v: error %v, want %q", c.env, err, c.want)
		}
	}
}

func TestFromEnvKeepsTheOtherValuesOnError(t *testing.T) {
	c, err := FromEnv(map[string]string{"ETL_CATCHUP_DAYS": "x", "MARKETPLACE_API_URL": "http://api/data"})
	if err == nil || c.APIURL != "http://api/data" || c.HTTPRetries != 5 {
		t.Fatalf("err %v, config %+v: want the error and the other values filled", err, c)
	}
}
