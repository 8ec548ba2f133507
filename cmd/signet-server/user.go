// This file holds `signet-server user ...`: add, delete and list.

package main

import (
	"bytes"
	"fmt"

	"github.com/spf13/cobra"
)

func (a *app) userCmd() *cobra.Command {
	c := group(&cobra.Command{Use: "user", Short: "Add, delete and list users"})
	var admin, force bool
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Add a user; an admin (--admin) also gets a password for administration",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var pw []byte
			if admin {
				var err error
				if pw, err = a.read("administration password of "+args[0], a.pwFile, a.pwFD, true); err != nil {
					return err
				}
				defer clear(pw)
			}
			return a.with(cmd, false, true, func(s *session) error {
				if err := s.admin.AddUser(cmd.Context(), args[0], admin, pw); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "added user %s\n", args[0])
				return nil
			})
		},
	}
	add.Flags().BoolVar(&admin, "admin", false, "a server administrator (Sigul's admin flag)")
	secretFlags(add, "password", "admin's password", &a.pwFile, &a.pwFD)

	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a user (refused while they have key access, unless --force)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.with(cmd, false, false, func(s *session) error {
				if err := s.admin.DeleteUser(cmd.Context(), args[0], force); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "deleted user %s\n", args[0])
				return nil
			})
		},
	}
	del.Flags().BoolVar(&force, "force", false, "also remove the user's key accesses")

	list := &cobra.Command{
		Use:   "list",
		Short: "List users",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.with(cmd, false, false, func(s *session) error {
				users, err := s.admin.Store.ListUsers(cmd.Context())
				if err != nil {
					return err
				}
				var b bytes.Buffer
				for _, u := range users {
					b.WriteString(u.Name)
					if u.Admin {
						b.WriteString(" (admin)")
					}
					b.WriteByte('\n')
				}
				_, err = cmd.OutOrStdout().Write(b.Bytes())
				return err
			})
		},
	}
	c.AddCommand(add, del, list)
	return c
}
