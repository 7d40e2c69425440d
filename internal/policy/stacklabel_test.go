package policy

import "testing"

func TestStackLabelMismatch(t *testing.T) {
	for _, tc := range []struct {
		name, secret, label, want string
	}{
		{name: "ok/own stack", secret: "shop_db_password", label: "shop"},
		{name: "ok/stack name with an underscore", secret: "my_app_db", label: "my_app"},
		{name: "ok/no stack label", secret: "shop_db_password"},
		{name: "mismatch/relabelled by another stack", secret: "shop_db_password", label: "blog", want: "blog"},
		{name: "mismatch/label is a prefix without the underscore", secret: "shopping_db", label: "shop", want: "shop"},
		{name: "mismatch/name is the stack alone", secret: "shop", label: "shop", want: "shop"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l map[string]string
			if tc.label != "" {
				l = labels(stackLabel, tc.label)
			}
			if got := StackLabelMismatch(tc.secret, l); got != tc.want {
				t.Fatalf("StackLabelMismatch(%q, %q) = %q, want %q", tc.secret, tc.label, got, tc.want)
			}
		})
	}
}
